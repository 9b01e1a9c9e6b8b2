"""NaN/inf logits (an fp16 overflow on the NPU) are never scored silently: postprocess refuses them by
default and names their files, `--skip_nonfinite` scores the finite rest and says so, the ONNX Runtime
runner warns about its own, and predict shows them as such instead of a label."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import assert_clean_error, cli, edit_outputs, input_arg, run_script
from onnx import TensorProto, helper

from tinybert.data.dataset import read_sst2_tsv
from tinybert.data.features import load_features
from tinybert.steps.inference import run_inference

NAN, INF = float("nan"), float("inf")


def overflowing_model(path, threshold: int):
    """A stand-in for a model that overflows: logits [log(ids[:, 1] - threshold), ids[:, 1]], so a sample
    whose first token id is below the threshold gets NaN, one equal to it -inf, the others finite."""
    dims = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, dims) for n in ("input_ids", "segment_ids", "input_mask")]
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 2])
    nodes = [helper.make_node("Slice", ["input_ids", "one", "two", "one"], ["first"]),
             helper.make_node("Cast", ["first"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("Sub", ["x", "k"], ["shifted"]),
             helper.make_node("Log", ["shifted"], ["y"]),
             helper.make_node("Concat", ["y", "x"], ["output"], axis=1)]
    constants = [helper.make_tensor("one", TensorProto.INT64, [1], [1]), helper.make_tensor("two", TensorProto.INT64, [1], [2]),
                 helper.make_tensor("k", TensorProto.FLOAT, [], [float(threshold)])]
    model = helper.make_model(helper.make_graph(nodes, "overflow", inputs, [output], initializer=constants),
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def setup(small_inputs, small_features, tmp_path_factory):
    bin_dir = small_features
    root = tmp_path_factory.mktemp("nonfinite")
    folders = {fmt: run_inference(str(small_inputs.checkpoint), input_arg(bin_dir).split(","), str(root / "result"), 8,
                                  fmt, "pytorch", f"clean_{fmt.lower()}", progress=False).result_dir
               for fmt in ("TXT", "BIN", "NPY")}
    return root, bin_dir, folders


def _labels(small_inputs):
    return np.asarray(read_sst2_tsv(str(small_inputs.tsv)).labels)


@pytest.mark.parametrize("fmt", ["TXT", "BIN", "NPY"])
def test_postprocess_refuses_nonfinite_outputs_naming_their_files(setup, tmp_path, fmt):
    root, bin_dir, folders = setup
    from pathlib import Path

    broken = edit_outputs(Path(folders[fmt]), tmp_path / "broken", {4: [NAN, 0.0], 30: [1.0, INF], 9: [-INF, NAN]})
    ext = fmt.lower()
    proc = cli("postprocess", broken, "--bin_dir", bin_dir)
    assert_clean_error(proc, f"{broken}: expected finite logits, got NaN/inf in 3 of 37 outputs (NaN 2, inf 1): "
                             f"input4_0.{ext}, input9_0.{ext}, input30_0.{ext}", "--skip_nonfinite", code=2)
    assert proc.stderr.count("[ERROR]") == 1 and "accuracy" not in proc.stdout


@pytest.mark.slow
def test_skip_nonfinite_scores_the_finite_rest_and_says_so(setup, small_inputs, tmp_path):
    root, bin_dir, folders = setup
    from pathlib import Path

    from tinybert.results.resultdir import read_logits

    logits = read_logits(folders["TXT"], [f"input{i}" for i in range(37)])
    bad = [2, 5, 6, 11, 12, 13, 20]  # more than the five files a message names
    broken = edit_outputs(Path(folders["TXT"]), tmp_path / "broken", {i: [NAN, NAN] for i in bad})
    env = {"BIN_DIR": str(bin_dir), "RESULT_DIR": str(tmp_path)}
    refused = run_script("postprocess_data.sh", "broken", cwd=tmp_path, env=env)
    assert_clean_error(refused, "7 of 37 outputs (NaN 7, inf 0): input2_0.txt, input5_0.txt, input6_0.txt, "
                                "input11_0.txt, input12_0.txt ... (7 in all)", code=2)
    proc = run_script("postprocess_data.sh", "broken", "--skip_nonfinite", "--json_out", "acc.json", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    kept = np.setdiff1d(np.arange(37), bad)
    labels = _labels(small_inputs)
    correct = int((logits[kept].argmax(1) == labels[kept]).sum())
    assert "left out (--skip_nonfinite): the figures below are over 30 of 37 samples" in proc.stdout
    assert f"({correct}/30 samples correct, outputs from {broken}; over 30 of 37 samples, 7 non-finite left out)" \
        in proc.stdout
    report = json.loads((tmp_path / "acc.json").read_text())
    assert report["num_samples"] == 30 and report["num_outputs"] == 37 and report["correct"] == correct
    assert report["accuracy"] == pytest.approx(100.0 * correct / 30)
    assert report["nonfinite_left_out"]["samples"] == bad and report["nonfinite_left_out"]["nan"] == 7


def test_skip_nonfinite_with_nothing_finite_is_an_error(setup, tmp_path):
    root, bin_dir, folders = setup
    from pathlib import Path

    broken = edit_outputs(Path(folders["BIN"]), tmp_path / "broken", {i: [INF, 0.0] for i in range(37)})
    assert_clean_error(cli("postprocess", broken, "--bin_dir", bin_dir, "--skip_nonfinite"),
                       "expected some finite logits to score, got NaN/inf in all 37 of 37 outputs", code=2)


@pytest.fixture(scope="module")
def overflow(setup, tmp_path_factory):
    """The overflowing stand-in model with a threshold that splits the samples, and which samples overflow."""
    _, bin_dir, _ = setup
    features, _ = load_features(str(bin_dir))
    first = features.input_ids[:, 1]
    threshold = int(np.median(first))
    model = overflowing_model(tmp_path_factory.mktemp("overflow") / "overflow.onnx", threshold)
    return model, np.flatnonzero(first <= threshold)


@pytest.mark.slow
def test_the_onnxruntime_runner_warns_about_its_own_nonfinite_outputs(setup, overflow, tmp_path, small_inputs):
    _, bin_dir, folders = setup
    model, bad = overflow
    assert 0 < len(bad) < 37
    proc = cli("infer", "--model", model, "--input", input_arg(bin_dir), "--output", tmp_path / "result",
               "--batchsize", 4, "--output_dirname", "overflow", "--no_progress")
    assert proc.returncode == 0, proc.stderr
    shown = ", ".join(map(str, bad[:5]))
    assert f"[WARN] {len(bad)} of 37 outputs are non-finite (NaN/inf): sample(s) {shown}" in proc.stdout
    refused = cli("postprocess", tmp_path / "result" / "overflow", "--bin_dir", bin_dir)
    assert_clean_error(refused, f"NaN/inf in {len(bad)} of 37 outputs", f"input{bad[0]}_0.txt", code=2)
    compared = cli("compare", folders["TXT"], tmp_path / "result" / "overflow", "--bin_dir", bin_dir)
    assert compared.returncode == 0, compared.stderr
    assert f"[WARN] B has NaN/inf logits in {len(bad)} of 37 outputs" in compared.stdout
    clean = cli("infer", "--runtime", "pytorch", "--model", small_inputs.checkpoint, "--input", input_arg(bin_dir),
                "--output", tmp_path / "result", "--batchsize", 8, "--no_progress")
    assert clean.returncode == 0 and "[WARN]" not in clean.stdout


def test_predict_shows_nonfinite_outputs_instead_of_a_label(overflow, small_inputs):
    model, _ = overflow
    vocab = small_inputs.checkpoint / "vocab.txt"
    words = [w.rstrip("\n") for w in vocab.read_text(encoding="utf-8").splitlines()]
    # the stand-in overflows for a first token id at or below its threshold
    import onnx as onnx_lib

    threshold = onnx_lib.numpy_helper.to_array(next(t for t in onnx_lib.load(model).graph.initializer if t.name == "k"))
    low, high = words[5], words[int(threshold) + 1]
    proc = cli("predict", "--onnx", model, "--vocab_file", vocab, "--", f"{low} movie", f"{high} movie")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()[1:]]
    assert rows[0][:4] == ["-", "non-finite", "nan", "nan"] and rows[0][4] == f"{low} movie"
    assert rows[1][0] == "1" and rows[1][1] == "positive"  # [log(id - k), id]: the second logit is larger
    assert f"[WARN] 1 of 2 sentence(s) got non-finite logits (NaN/inf) from the model, shown as 'non-finite' " \
           f"with no label: '{low} movie'" in proc.stderr
