"""`python -m tinybert compare` / test/compare.sh: two result folders of the same features held against
each other (differences, cosine similarity, agreement, flips, accuracy, non-finite outputs, the
samples that differ most with their sentences), the CI gates, and a clear error for each bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import assert_clean_error, cli, edit_outputs, input_arg, run_script

from tinybert.steps.compare import compare
from tinybert.data.dataset import read_sst2_tsv
from tinybert.errors import ResultFolderError
from tinybert.data.features import preprocess
from tinybert.steps.inference import run_inference
from tinybert.results.resultdir import read_logits


@pytest.fixture(scope="module")
def runs(small_inputs, small_features, small_onnx_bs4, tmp_path_factory):
    """Features of the small set; the same checkpoint run by PyTorch (TXT) and by ONNX Runtime (NPY)."""
    bin_dir, model = small_features, small_onnx_bs4
    root = tmp_path_factory.mktemp("compare")
    inputs = input_arg(bin_dir).split(",")
    torch_run = run_inference(str(small_inputs.checkpoint), inputs, str(root / "result"), 8, "TXT", "pytorch",
                              "torch_txt", progress=False).result_dir
    ort_run = run_inference(str(model), inputs, str(root / "result"), 4, "NPY", "onnxruntime", "ort_npy",
                            progress=False).result_dir
    stems = [f"input{i}" for i in range(37)]
    return root, bin_dir, torch_run, ort_run, read_logits(torch_run, stems)


def _compare(runs, a, b, *extra, **kwargs):
    root, bin_dir = runs[0], runs[1]
    return cli("compare", a, b, "--bin_dir", bin_dir, "--result_root", root / "result", *extra, **kwargs)


def test_the_same_model_on_two_backends_and_formats_agrees(runs, tmp_path):
    root, _, torch_run, ort_run, _ = runs
    out = tmp_path / "cmp.json"
    proc = _compare(runs, "torch_txt", "ort_npy", "--json_out", out)  # names inside --result_root
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert (report["a"]["format"], report["b"]["format"]) == ("TXT", "NPY")
    assert report["a"]["path"] == torch_run and report["b"]["path"] == ort_run
    assert report["num_samples"] == report["compared_samples"] == 37 and report["left_out_nonfinite"] == 0
    assert 0 < report["max_abs_diff"] <= 1e-4 and report["mean_abs_diff"] <= report["max_abs_diff"]
    assert report["cosine_similarity"]["min"] > 0.99999
    assert report["agreement"] == {"same_prediction": 37, "of": 37, "fraction": 1.0}
    assert report["flips"]["total"] == 0 and report["a"]["accuracy"] == report["b"]["accuracy"]
    assert "[INFO] same prediction: 37/37 samples (100.00%)" in proc.stdout
    assert "comparison written to" in proc.stdout


def test_flips_accuracy_and_the_samples_that_differ_most(runs, small_inputs, tmp_path):
    root, bin_dir, torch_run, _, logits = runs
    labels = read_sst2_tsv(str(small_inputs.tsv)).labels
    sentences = read_sst2_tsv(str(small_inputs.tsv)).sentences
    preds = logits.argmax(1)
    neg, pos = int(np.flatnonzero(preds == 0)[0]), int(np.flatnonzero(preds == 1)[0])
    edits = {neg: [-3.0, 3.0], pos: [5.0, -5.0], 11: (logits[11] + [0.25, -0.25]).tolist()}
    changed = edit_outputs(root / "result" / "torch_txt", tmp_path / "changed", edits)
    out = tmp_path / "cmp.json"
    proc = _compare(runs, torch_run, changed, "--top", 3, "--json_out", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    new_preds = preds.copy()
    new_preds[[neg, pos]] = [1, 0]
    right_a, right_b = preds == labels, new_preds == labels
    assert report["flips"] == {"total": 2, "negative_to_positive": 1, "positive_to_negative": 1,
                               "a_right_b_wrong": int((right_a & ~right_b).sum()),
                               "a_wrong_b_right": int((~right_a & right_b).sum())}
    assert report["agreement"]["same_prediction"] == 35
    assert report["b"]["correct"] == int(right_b.sum()) and report["a"]["correct"] == int(right_a.sum())
    expected_diff = {i: float(np.abs(np.asarray(v, dtype=np.float32) - logits[i]).max()) for i, v in edits.items()}
    assert report["max_abs_diff"] == pytest.approx(max(expected_diff.values()), abs=2e-6)
    top = report["top"]
    assert [row["sample"] for row in top] == sorted(edits, key=lambda i: -expected_diff[i])
    for row in top:
        i = row["sample"]
        assert row["sentence"] == sentences[i] and row["label"] == labels[i] and row["output"] == f"input{i}_0.txt"
        assert row["logits_b"] == pytest.approx(edits[i], abs=1e-6)
    assert report["cosine_similarity"]["min"] < 0  # a flipped sample points the other way
    assert "flips: 2 (A negative -> B positive: 1, A positive -> B negative: 1)" in proc.stdout
    assert "the 3 samples that differ most" in proc.stdout
    flipped_line = next(line for line in proc.stdout.splitlines() if line.split()[:2] == ["1", str(top[0]["sample"])])
    assert "*" in flipped_line and " ".join(sentences[top[0]["sample"]].split())[:40] in flipped_line


def test_gates_exit_1_when_exceeded(runs, tmp_path):
    root, _, torch_run, _, logits = runs
    changed = edit_outputs(root / "result" / "torch_txt", tmp_path / "changed",
                           {0: (-logits[0]).tolist()})  # one flip
    ok = _compare(runs, torch_run, changed, "--max_abs_diff", 100, "--min_agreement", "95%")
    assert ok.returncode == 0, ok.stderr
    worst = float(np.abs(2 * logits[0]).max())  # TXT keeps 6 decimals: the printed value agrees to 5 digits
    proc = _compare(runs, torch_run, changed, "--max_abs_diff", 0.001, "--min_agreement", 0.99)
    assert_clean_error(proc, "expected max |logit difference| <= 0.001 (--max_abs_diff), got",
                       "expected the same prediction for >= 99% of samples (--min_agreement), got 97.30% (36/37)",
                       code=1)
    got = float(proc.stderr.split("(--max_abs_diff), got ")[1].split(";")[0])
    assert got == pytest.approx(worst, abs=1e-5)
    assert proc.stderr.count("[ERROR]") == 1 and "same prediction: 36/37" in proc.stdout  # the report came first
    assert_clean_error(_compare(runs, torch_run, changed, "--min_agreement", "99"),
                       "--min_agreement: expected a fraction in [0, 1]", "got '99'", code=2)


def test_nonfinite_outputs_are_shown_and_left_out(runs, tmp_path):
    root, _, torch_run, _, logits = runs
    broken = edit_outputs(root / "result" / "ort_npy", tmp_path / "broken",
                          {3: [float("nan"), 1.0], 7: [float("inf"), float("-inf")], 20: [0.5, float("nan")]})
    out = tmp_path / "cmp.json"
    proc = _compare(runs, torch_run, broken, "--json_out", out)
    assert proc.returncode == 0, proc.stderr
    def strict(token):
        raise AssertionError(f"{token} in the JSON report: strict JSON parsers refuse it")

    report = json.loads(out.read_text(), parse_constant=strict)
    assert [(row["sample"], row["nonfinite"], row["prediction_b"]) for row in report["top"][:3]] == [
        (3, True, None), (7, True, None), (20, True, None)]  # NaN/inf samples are listed first
    assert not report["top"][3]["nonfinite"] and report["top"][3]["prediction_b"] in (0, 1)
    assert report["top"][0]["logits_b"] == ["nan", 1.0] and report["top"][1]["logits_b"] == ["inf", "-inf"]
    assert report["b"]["nonfinite"] == {"count": 3, "of": 37, "nan": 2, "inf": 1, "samples": [3, 7, 20],
                                        "files": ["input3_0.npy", "input7_0.npy", "input20_0.npy"]}
    assert report["a"]["nonfinite"]["count"] == 0
    assert report["compared_samples"] == 34 and report["left_out_nonfinite"] == 3
    assert np.isfinite(report["max_abs_diff"]) and report["max_abs_diff"] <= 1e-4
    assert "[WARN] B has NaN/inf logits in 3 of 37 outputs (NaN 2, inf 1): input3_0.npy, input7_0.npy, input20_0.npy" \
        in proc.stdout
    assert "over the 34 of 37 samples finite in both (3 left out)" in proc.stdout
    gated = _compare(runs, torch_run, broken, "--max_abs_diff", 1)
    assert_clean_error(gated, "got 3 sample(s) with NaN/inf outputs", code=1)


def test_sentences_of_a_source_file_that_is_gone(small_inputs, runs, tmp_path):
    tsv = tmp_path / "copy.tsv"
    shutil.copy(small_inputs.tsv, tsv)
    preprocess(str(tsv), str(small_inputs.checkpoint / "vocab.txt"), str(tmp_path / "bin"), 64, progress=False)
    inputs = input_arg(tmp_path / "bin").split(",")
    first = run_inference(str(small_inputs.checkpoint), inputs, str(tmp_path / "result"), 8, runtime="pytorch",
                          output_dirname="one", progress=False).result_dir
    tsv.unlink()
    proc = cli("compare", first, first, "--bin_dir", tmp_path / "bin", "--top", 2)
    assert proc.returncode == 0, proc.stderr
    assert f"[WARN] sentences not shown: {tsv}: the source file the manifest records is gone" in proc.stdout
    assert proc.stdout.count("(unavailable)") == 2 and "max 0, mean 0" in proc.stdout


@pytest.fixture(scope="module")
def other_features(runs, small_inputs):
    """Features of other sentences (same count) and of fewer sentences, each with a result folder."""
    root = runs[0]
    lines = small_inputs.tsv.read_text(encoding="utf-8").splitlines()
    (root / "b.tsv").write_text("\n".join([lines[0], *(f"the {line}" for line in lines[1:])]) + "\n", encoding="utf-8")
    (root / "c.tsv").write_text("\n".join(lines[:21]) + "\n", encoding="utf-8")
    folders = {}
    for name in ("b", "c"):
        preprocess(str(root / f"{name}.tsv"), str(small_inputs.checkpoint / "vocab.txt"), str(root / f"bin_{name}"), 64,
                   progress=False)
        folders[name] = run_inference(str(small_inputs.checkpoint), input_arg(root / f"bin_{name}").split(","),
                                      str(root / "result"), 8, runtime="pytorch", output_dirname=f"run_{name}",
                                      progress=False).result_dir
    return folders


@pytest.mark.slow
def test_bad_inputs_are_named(runs, other_features, tmp_path):
    root, bin_dir, torch_run, _, _ = runs
    assert_clean_error(_compare(runs, torch_run, "no_such_run"), "result/no_such_run", "found no such folder", code=2)
    # folders of other sentences, or of fewer samples: refused by what their summaries recorded
    assert_clean_error(_compare(runs, torch_run, other_features["b"]), "run_b",
                       f"expected outputs for the sentences {torch_run} was made from", "another source file", code=2)
    assert_clean_error(_compare(runs, torch_run, other_features["c"]), "run_c",
                       f"expected outputs for the 37 samples {torch_run} holds", "got outputs for 20 samples", code=2)
    # ... and by the sample count alone when a folder has no summary (copied away, another tool)
    shutil.copytree(other_features["c"], tmp_path / "copied")
    assert_clean_error(_compare(runs, torch_run, tmp_path / "copied"), "copied", "expected exactly 37 outputs",
                       "missing input20_0.txt", code=2)
    staging = root / "result" / ".result.partial-test"
    shutil.copytree(torch_run, staging)
    assert_clean_error(_compare(runs, staging, torch_run), ".result.partial-test",
                       "staging folder of an unfinished or interrupted run", code=2)
    (tmp_path / "empty").mkdir()
    assert_clean_error(_compare(runs, torch_run, tmp_path / "empty"), "empty", "got an empty folder", code=2)
    for name, content, fragment in (("truncated", "0.1 ", "truncated"), ("words", "one two \n", "expected 2 numbers")):
        broken = tmp_path / name
        shutil.copytree(torch_run, broken)
        (broken / "input5_0.txt").write_text(content)
        assert_clean_error(_compare(runs, broken, torch_run), f"{name}/input5_0.txt", fragment, code=2)
    for proc in (_compare(runs, torch_run, tmp_path / "empty"),):
        assert proc.stderr.count("[ERROR]") == 1


def _ais_infer_layout(folder, target):
    """A copy of `folder` with its summary inside as `sumary.json` (sic, ais_infer), none beside it."""
    shutil.copytree(folder, target)
    shutil.copy(f"{folder}_summary.json", target / "sumary.json")
    return target


def test_compare_works_across_summary_layouts(runs, other_features, tmp_path, capsys):
    _, bin_dir, torch_run, ort_run, _ = runs
    old = _ais_infer_layout(torch_run, tmp_path / "ais_infer_result_bs8")
    report = compare(str(old), ort_run, str(bin_dir), top=0)
    assert report["num_samples"] == 37 and report["agreement"]["same_prediction"] == 37
    assert f"[INFO] A: {old} (TXT, 37 outputs)" in capsys.readouterr().out
    # each side's record is read from its own layout: other sentences are still refused, either way round
    with pytest.raises(ResultFolderError, match=f"expected outputs for the sentences {old} was made from"):
        compare(str(old), other_features["b"], str(bin_dir), top=0)
    other = _ais_infer_layout(other_features["b"], tmp_path / "ais_infer_result_b")
    with pytest.raises(ResultFolderError) as info:
        compare(torch_run, str(other), str(bin_dir), top=0)
    assert str(info.value).startswith(f"{other}: expected outputs for the sentences {torch_run} was made from")
    assert "another source file" in str(info.value) and f"recorded in {other}/sumary.json" in str(info.value)


def test_compare_script(runs, tmp_path):
    root, bin_dir, _, _, _ = runs
    env = {"RESULT_DIR": str(root / "result"), "BIN_DIR": str(bin_dir)}
    proc = run_script("compare.sh", "torch_txt", "ort_npy", "--top", 1, "--min_agreement", "100%", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "same prediction: 37/37" in proc.stdout and "the 1 samples that differ most" in proc.stdout
    assert_clean_error(run_script("compare.sh", "torch_txt", cwd=tmp_path, env=env), "usage: bash test/compare.sh")
