"""Scoring a result folder: accuracy and per-sample predictions, GLUE submissions for unlabelled sets,
results refused when they were made from other features, and a full disk while writing predictions."""

from __future__ import annotations

import json
import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_clean_error, cli, edit_outputs, run_script, tsv_bytes
from reference import reference_features, reference_logits

from tinybert.data.dataset import read_sst2_tsv
from tinybert import fileio
from tinybert.errors import OutputError, ResultFolderError
from tinybert.data.features import preprocess
from tinybert.steps.postprocess import score

# --- unlabelled data and per-sample predictions -------------------------------------------------

TEST_ROWS = [("1031", "a great , moving film"), ("7", "boring and awful"), ("12", "\"not bad\" , fun"),
             ("500", "Café 中文 story")]


@pytest.fixture(scope="module")
def unlabelled(small_inputs, tmp_path_factory):
    """The model card's steps on a GLUE test.tsv (`index<TAB>sentence`, no labels)."""
    root = tmp_path_factory.mktemp("unlabelled")
    (root / "test.tsv").write_bytes(tsv_bytes(TEST_ROWS, header=("index", "sentence"), newline="\r\n"))
    env = {"DATA_FILE": str(root / "test.tsv"), "CKPT_DIR": str(small_inputs.checkpoint)}
    pre = run_script("preprocess_data.sh", cwd=root, env=env)
    assert pre.returncode == 0, pre.stderr
    infer = cli("infer", "--runtime", "pytorch", "--model", small_inputs.checkpoint, "--input",
                "bert_bin/input_ids,bert_bin/segment_ids,bert_bin/input_mask", "--batchsize", 3,
                "--output_dirname", "test_run", cwd=root)
    assert infer.returncode == 0, infer.stderr
    ckpt = small_inputs.checkpoint
    arrays = reference_features([s for _, s in TEST_ROWS], str(ckpt / "vocab.txt"), 64)
    logits = reference_logits(torch.load(ckpt / "pytorch_model.bin", weights_only=True),
                              json.loads((ckpt / "config.json").read_text()), *arrays)
    return root, env, logits


@pytest.mark.slow
def test_unlabelled_set_gives_a_glue_submission(unlabelled):
    root, env, logits = unlabelled
    post = run_script("postprocess_data.sh", "test_run", cwd=root, env=env)
    assert post.returncode == 0, post.stderr
    assert "accuracy" not in post.stdout and "4 predictions written to ./result/test_run_predictions.tsv" in post.stdout
    lines = (root / "result" / "test_run_predictions.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction"
    assert [line.split("\t") for line in lines[1:]] == [
        [index, str(label)] for (index, _), label in zip(TEST_ROWS, logits.argmax(axis=1))]
    again = run_script("postprocess_data.sh", "test_run", cwd=root, env=env)
    assert again.returncode == 0 and "unchanged in" in again.stdout  # re-running is harmless


@pytest.mark.slow
def test_predictions_with_logits_on_request_and_no_silent_overwrite(unlabelled):
    root, env, logits = unlabelled
    post = run_script("postprocess_data.sh", "test_run", "--predictions_out", "p.tsv", "--with_logits",
                      cwd=root, env=env)
    assert post.returncode == 0, post.stderr
    rows = [line.split("\t") for line in (root / "p.tsv").read_text().splitlines()]
    assert rows[0] == ["index", "prediction", "logit_0", "logit_1"]
    assert [row[0] for row in rows[1:]] == [index for index, _ in TEST_ROWS]
    np.testing.assert_allclose(np.array([[float(v) for v in row[2:]] for row in rows[1:]]), logits, atol=1e-4)
    (root / "other.tsv").write_text("index\tprediction\n1031\t0\n")
    clash = run_script("postprocess_data.sh", "test_run", "--predictions_out", "other.tsv", cwd=root, env=env)
    assert_clean_error(clash, "other.tsv", "refusing to overwrite earlier predictions", code=2)
    assert (root / "other.tsv").read_text() == "index\tprediction\n1031\t0\n"
    assert not [n for n in os.listdir(root) if ".partial" in n]


@pytest.mark.slow
def test_labelled_set_writes_predictions_beside_the_accuracy(small_inputs, small_features, small_result, tmp_path,
                                                             capsys):
    scored = score(str(small_result), str(small_features), predictions_out=str(tmp_path / "p.tsv"), with_logits=True)
    labels = read_sst2_tsv(str(small_inputs.tsv)).labels
    assert scored["num_samples"] == small_inputs.count == len(labels)
    assert f"({scored['correct']}/{small_inputs.count} samples correct" in capsys.readouterr().out
    rows = [line.split("\t") for line in (tmp_path / "p.tsv").read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == [str(i) for i in range(len(labels))]
    assert sum(int(r[1]) == label for r, label in zip(rows, labels)) == scored["correct"]
    assert all(int(r[1]) == int(float(r[3]) > float(r[2])) for r in rows)
    assert scored["accuracy"] == pytest.approx(100.0 * scored["correct"] / len(labels))


# Logits chosen by hand, one pattern per sample in turn: a clear 0, a clear 1, a tie (class 0, numpy's argmax as the
# original TinyBERT postprocess takes it: the first), both negative with class 1 the larger, and a gap of 1e-6.
CHOSEN_LOGITS = [([2.0, -1.0], 0), ([-1.0, 2.0], 1), ([0.5, 0.5], 0), ([-3.0, -2.5], 1), ([0.125, 0.125001], 1)]


def test_the_class_is_the_larger_logit_and_a_tie_is_negative(small_features, small_result, tmp_path):
    """Each sample's class from its two logits, by the rule written out; the accuracy and confusion matrix follow."""
    labels = json.loads((small_features / "manifest.json").read_text())["labels"]
    chosen = [CHOSEN_LOGITS[i % len(CHOSEN_LOGITS)] for i in range(len(labels))]
    folder = edit_outputs(small_result, tmp_path / "chosen", {i: logits for i, (logits, _) in enumerate(chosen)})
    scored = score(str(folder), str(small_features), predictions_out=str(tmp_path / "p.tsv"))
    expected = [label for _, label in chosen]
    rows = [line.split("\t") for line in (tmp_path / "p.tsv").read_text().splitlines()[1:]]
    assert [int(row[1]) for row in rows] == expected
    assert scored["correct"] == sum(p == t for p, t in zip(expected, labels))
    assert scored["accuracy"] == pytest.approx(100.0 * scored["correct"] / len(labels))
    assert scored["confusion_matrix"] == [[sum(t == truth and p == guess for p, t in zip(expected, labels))
                                           for guess in (0, 1)] for truth in (0, 1)]
    assert 0 < scored["correct"] < len(labels)  # both right and wrong answers counted


def test_disk_full_while_writing_predictions_leaves_nothing(small_features, small_result, tmp_path, monkeypatch):
    def disk_full_on_write(path, mode="r", *args, **kwargs):  # fileio writes every text file; reads still work
        if "w" in mode:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(fileio, "open", disk_full_on_write, raising=False)
    with pytest.raises(OutputError, match="cannot write predictions to .*No space left on device"):
        score(str(small_result), str(small_features), predictions_out=str(tmp_path / "p.tsv"))
    assert os.listdir(tmp_path) == []  # no partial predictions


# --- results scored against other features ------------------------------------------------------

@pytest.fixture(scope="module")
def other_features(small_inputs, tmp_path_factory):
    """Besides the result folder's features: B (other sentences, same count), C (fewer), A32 (seq_len 32)."""
    root = tmp_path_factory.mktemp("provenance")
    vocab = str(small_inputs.checkpoint / "vocab.txt")
    lines = small_inputs.tsv.read_text(encoding="utf-8").splitlines()
    (root / "b.tsv").write_text("\n".join([lines[0], *(f"the {line}" for line in lines[1:])]) + "\n", encoding="utf-8")
    (root / "c.tsv").write_text("\n".join(lines[:21]) + "\n", encoding="utf-8")
    for name, tsv in (("B", root / "b.tsv"), ("C", root / "c.tsv")):
        preprocess(str(tsv), vocab, str(root / name), 64, progress=False)
    preprocess(str(small_inputs.tsv), vocab, str(root / "A32"), 32, progress=False)
    return root


def _accepted(proc, count):
    assert proc.returncode == 0, proc.stderr
    assert "[INFO] accuracy:" in proc.stdout and f"/{count} samples correct" in proc.stdout, proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("other, fragments", [
    ("B", ["expected outputs for sentences of", "b.tsv", "for another source file"]),
    ("C", ["expected outputs for the 20 samples of", "got outputs for 37 samples"]),
    ("A32", ["for features with other checksums", "run the inference again"]),
])
def test_postprocess_refuses_results_of_other_features(small_features, small_result, other_features, other,
                                                       fragments):
    proc = cli("postprocess", small_result, "--bin_dir", other_features / other)
    assert_clean_error(proc, "runA", str(small_features / "manifest.json"), "recorded in", "runA_summary.json",
                       *fragments, code=2)
    _accepted(cli("postprocess", small_result, "--bin_dir", small_features), 37)


@pytest.mark.slow
def test_without_a_summary_the_sample_count_still_has_to_match(small_features, small_result, other_features,
                                                              tmp_path):
    copy = tmp_path / "copied"  # e.g. a folder moved away from its summary, or from another tool
    shutil.copytree(small_result, copy)
    assert_clean_error(cli("postprocess", copy, "--bin_dir", other_features / "C"),
                       "expected exactly 20 outputs", "unexpected input20_0.txt", code=2)
    _accepted(cli("postprocess", copy, "--bin_dir", small_features), 37)


def test_a_damaged_summary_is_refused(small_features, small_result, tmp_path):
    shutil.copytree(small_result, tmp_path / "runA")
    summary = (small_result.parent / "runA_summary.json").read_text()
    (tmp_path / "runA_summary.json").write_text(summary[: len(summary) // 2])
    assert_clean_error(cli("postprocess", tmp_path / "runA", "--bin_dir", small_features),
                       "runA_summary.json: expected the inference summary", "unparsable", code=2)


# --- result folders of the ais_infer generation ---------------------------------------------------

def ais_infer_copy(folder: Path, target: Path) -> Path:
    """A copy of result folder `folder` in the ais_infer layout: its summary inside as `sumary.json` (sic),
    none beside it (the model card's example folder name)."""
    shutil.copytree(folder, target)
    shutil.copy(folder.parent / f"{folder.name}_summary.json", target / "sumary.json")
    return target


def test_an_ais_infer_folder_scores_the_same(small_features, small_result, tmp_path):
    copy = ais_infer_copy(small_result, tmp_path / "ais_infer_result_bs1")
    assert not (tmp_path / "ais_infer_result_bs1_summary.json").exists()
    expected = score(str(small_result), str(small_features), predictions_out="")
    scored = score(str(copy), str(small_features), predictions_out="")
    assert scored == {**expected, "result_dir": str(copy)} and scored["num_samples"] == 37


@pytest.mark.slow
def test_an_ais_infer_folder_is_held_to_its_recorded_features(small_features, small_result, other_features, tmp_path):
    copy = ais_infer_copy(small_result, tmp_path / "ais_infer_result_bs1")
    with pytest.raises(ResultFolderError) as info:
        score(str(copy), str(other_features / "B"))
    message = str(info.value)
    assert message.startswith(f"{copy}: expected outputs for sentences of {other_features / 'b.tsv'}")
    assert "for another source file" in message and f"recorded in {copy / 'sumary.json'}" in message
