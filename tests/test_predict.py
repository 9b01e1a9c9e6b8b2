"""`python -m tinybert predict` / test/predict.sh: sentences in, label and probabilities out, through
the pipeline's own tokenization and backends (PyTorch on the checkpoint, or a static ONNX model)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, SPECIALS, WORDS, assert_clean_error, cli, run_script
from reference import reference_features, reference_logits

from tinybert.errors import DataFormatError, ModelFileError, UsageError
from tinybert.steps.predict import predict, print_predictions, read_sentences

SENTENCES = ["the movie was great fun", "a boring , awful plot", "\"naive\" charm ... not bad",
             "Café NAÏVE 中文 story", "", "- it was very good - but the acting was bad"]


@pytest.fixture(scope="module")
def expected(small_inputs):
    """Softmax of the original TinyBERT computation on independently computed features."""
    ckpt = small_inputs.checkpoint
    arrays = reference_features(SENTENCES, str(ckpt / "vocab.txt"), 64)
    state = torch.load(ckpt / "pytorch_model.bin", weights_only=True)
    logits = reference_logits(state, json.loads((ckpt / "config.json").read_text()), *arrays)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _parse(stdout: str):
    lines = stdout.splitlines()
    assert lines[0] == "label\tname\tp_negative\tp_positive\tsentence"
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(row) == 5 for row in rows), rows
    return [int(r[0]) for r in rows], np.array([[float(r[2]), float(r[3])] for r in rows]), [r[1] for r in rows], [r[4] for r in rows]


def _check(stdout, expected, atol=6e-5):
    labels, probs, names, sentences = _parse(stdout)
    assert sentences == SENTENCES
    np.testing.assert_allclose(probs, expected, atol=atol)
    assert labels == expected.argmax(axis=1).tolist()
    assert names == [("negative", "positive")[label] for label in labels]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=2e-4)


@pytest.mark.parametrize("backend", ["pytorch", "onnx"])
def test_predictions_in_process(small_inputs, small_onnx_bs4, expected, backend):
    """6 sentences; on the static [4, 64] model one full batch and one filled with filler rows that are dropped."""
    if backend == "pytorch":
        predictions = predict(SENTENCES, model_dir=str(small_inputs.checkpoint))
    else:
        predictions = predict(SENTENCES, onnx=str(small_onnx_bs4),
                              vocab_file=str(small_inputs.checkpoint / "vocab.txt"))
    np.testing.assert_allclose([p.probabilities for p in predictions], expected,
                               atol=1e-5 if backend == "pytorch" else 2e-4)
    assert [p.label for p in predictions] == expected.argmax(axis=1).tolist()
    out = io.StringIO()
    print_predictions(predictions, out)
    _check(out.getvalue(), expected, atol=2e-4)


def test_sentences_and_model_choice_are_checked(small_inputs, small_onnx_bs4):
    assert read_sentences(["a", ""], io.StringIO("ignored\n")) == ["a", ""]
    assert read_sentences([], io.StringIO("one\r\n\n  \ntwo\n")) == ["one", "two"]  # blank lines skipped
    with pytest.raises(UsageError, match="expected sentences as arguments or one per line on stdin, got none"):
        read_sentences([], io.StringIO("\n \n"))
    with pytest.raises(UsageError, match="expected exactly one of --model_dir .* got neither"):
        predict(["good"])
    with pytest.raises(ModelFileError, match="fixed length of 64"):
        predict(["good"], onnx=str(small_onnx_bs4), vocab_file=str(small_inputs.checkpoint / "vocab.txt"),
                max_seq_length=32)


@pytest.mark.slow
def test_pytorch_on_arguments_and_stdin(small_inputs, expected):
    by_args = cli("predict", "--model_dir", small_inputs.checkpoint, "--", *SENTENCES, check=True)
    _check(by_args.stdout, expected)
    # stdin: one sentence per line; blank lines are skipped, so send the empty sentence as arguments only
    stdin_sentences = [s for s in SENTENCES if s]
    proc = cli("predict", "--model_dir", small_inputs.checkpoint, input="\r\n".join(stdin_sentences) + "\n\n",
               check=True)
    rows = [line for line in by_args.stdout.splitlines()[1:] if line.split("\t")[4]]
    assert proc.stdout.splitlines()[1:] == rows


@pytest.mark.slow
def test_static_onnx_model_fills_the_last_batch(small_inputs, small_onnx_bs4, expected):
    """6 sentences on a [4, 64] model: one full batch, one filled with filler rows that are dropped."""
    proc = cli("predict", "--onnx", small_onnx_bs4, "--vocab_file", small_inputs.checkpoint / "vocab.txt", "--",
               *SENTENCES, check=True)
    _check(proc.stdout, expected, atol=2e-4)


@pytest.mark.slow
def test_predict_script(small_inputs, small_onnx_bs4, expected, tmp_path):
    env = {"CKPT_DIR": str(small_inputs.checkpoint)}
    proc = run_script("predict.sh", *SENTENCES, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    _check(proc.stdout, expected)
    onnx = run_script("predict.sh", *SENTENCES, cwd=tmp_path, env={**env, "ONNX_MODEL": str(small_onnx_bs4)})
    assert onnx.returncode == 0, onnx.stderr
    _check(onnx.stdout, expected, atol=2e-4)


@pytest.mark.slow
def test_predict_mistakes_are_clear(small_inputs, small_onnx_bs4, tmp_path):
    ckpt = small_inputs.checkpoint
    assert_clean_error(cli("predict", "good"), "exactly one of --model_dir", "got neither", code=2)
    assert_clean_error(cli("predict", "--model_dir", ckpt, "--onnx", small_onnx_bs4, "good"), "got both", code=2)
    empty = cli("predict", "--model_dir", ckpt, input="\n \n")
    assert_clean_error(empty, "expected sentences as arguments or one per line on stdin", code=2)
    assert_clean_error(cli("predict", "--onnx", small_onnx_bs4, "--vocab_file", ckpt / "vocab.txt",
                           "--max_seq_length", 32, "good"), "fixed length of 64", code=2)
    assert_clean_error(cli("predict", "--onnx", tmp_path / "none.onnx", "--vocab_file", ckpt / "vocab.txt",
                           "good"), "none.onnx", "found no such file", code=2)
    bigger = tmp_path / "vocab.txt"  # a vocabulary that is not the checkpoint's
    bigger.write_text("\n".join(SPECIALS + WORDS + [f"extra{i}" for i in range(50)]) + "\n", encoding="utf-8")
    assert_clean_error(cli("predict", "--model_dir", ckpt, "--vocab_file", bigger, "extra49 good"),
                       "expected the vocabulary of", code=2)


def test_a_line_that_is_not_utf8_is_named(tmp_path):
    """stdin is read with surrogateescape: such a line reached the tokenizer as a TypeError traceback."""
    raw = io.BytesIO("good movie\n\ncaf\xe9 au lait\n".encode("latin-1"))
    stdin = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape")
    with pytest.raises(DataFormatError, match="^stdin line 3: expected UTF-8 text, got undecodable byte 0xe9 at byte "
                                              "offset 3 of the line$"):
        read_sentences([], stdin)
    with pytest.raises(DataFormatError, match="^sentence argument 2: .* byte 0xe9 at byte offset 1 of the argument$"):
        read_sentences(["fine", "c\udce9fe"], io.StringIO(""))
    assert read_sentences([], io.TextIOWrapper(io.BytesIO("Café\r\n中文\n".encode()), encoding="utf-8")) == ["Café", "中文"]


@pytest.mark.slow
def test_predict_script_names_a_line_that_is_not_utf8(small_inputs, tmp_path):
    proc = subprocess.run(["bash", str(REPO / "test" / "predict.sh")], cwd=tmp_path, capture_output=True,
                          input="good\ncaf\xe9\n".encode("latin-1"),
                          env={**os.environ, "PYTHON": sys.executable, "CKPT_DIR": str(small_inputs.checkpoint)})
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert err.strip() == "[ERROR] stdin line 2: expected UTF-8 text, got undecodable byte 0xe9 at byte offset 3 of the line"
