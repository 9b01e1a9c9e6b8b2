"""Feature files: bytes against an independent tokenizer, the layout, the manifest and its checks,
truncation, re-runs, and a full disk while writing them."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from conftest import AWKWARD_ROWS, enospc_after, tsv_bytes
from reference import reference_features

from tinybert.data import features as features_module
from tinybert.data.dataset import read_sst2_tsv
from tinybert.errors import ManifestError, PipelineError
from tinybert.data.features import load_features, preprocess


@pytest.fixture(scope="module")
def features_dir(inputs, tmp_path_factory):
    """Features of the shared dev set when present, else of the generated TSV."""
    out = tmp_path_factory.mktemp("features") / "bert_bin"
    preprocess(str(inputs.tsv), str(inputs.checkpoint / "vocab.txt"), str(out), 64, progress=False)
    return out


def test_feature_files_equal_independent_computation(inputs, features_dir):
    dataset = read_sst2_tsv(str(inputs.tsv))
    assert len(dataset) == inputs.count
    expected = reference_features(dataset.sentences, str(inputs.checkpoint / "vocab.txt"), 64)
    for name, array in zip(("input_ids", "segment_ids", "input_mask"), expected):
        files = os.listdir(features_dir / name)
        assert len(files) == inputs.count
        for index in range(inputs.count):
            raw = (features_dir / name / f"input{index}.bin").read_bytes()
            assert raw == array[index].astype("<i8").tobytes(), f"{name}/input{index}.bin"


def test_feature_layout_is_little_endian_int64_rows(inputs, features_dir):
    raw = (features_dir / "input_ids" / "input0.bin").read_bytes()
    assert len(raw) == 64 * 8
    ids = np.frombuffer(raw, dtype="<i8")
    mask = np.frombuffer((features_dir / "input_mask" / "input0.bin").read_bytes(), dtype="<i8")
    length = int(mask.sum())
    assert ids[0] == (101 if inputs.real else 2)  # [CLS] in bert-base-uncased / the small vocab
    assert ids[length - 1] == (102 if inputs.real else 3)  # [SEP] closes the sentence
    assert (mask[:length] == 1).all() and (mask[length:] == 0).all() and (ids[length:] == 0).all()
    assert not np.frombuffer((features_dir / "segment_ids" / "input0.bin").read_bytes(), dtype="<i8").any()


def test_manifest_describes_the_features(inputs, features_dir):
    dataset = read_sst2_tsv(str(inputs.tsv))
    manifest = json.loads((features_dir / "manifest.json").read_text())
    assert manifest["num_samples"] == inputs.count
    assert manifest["max_seq_length"] == 64
    assert manifest["labels"] == dataset.labels
    assert manifest["source"]["sha256"] == dataset.sha256
    features, _ = load_features(str(features_dir))
    assert manifest["lengths"] == features.lengths.tolist()
    if inputs.real:  # the longest dev sentence has 55 tokens
        assert max(manifest["lengths"]) == 55 and manifest["num_truncated"] == 0
    else:  # only the generated TSV's 6th sentence (80 words) is longer than 64 tokens
        assert manifest["lengths"][5] == 64 and manifest["num_truncated"] == 1


def test_long_sentences_are_truncated_to_seq_len(small_features):
    manifest = json.loads((small_features / "manifest.json").read_text())
    assert manifest["num_truncated"] == 1 and manifest["lengths"][5] == 64
    ids = np.frombuffer((small_features / "input_ids" / "input5.bin").read_bytes(), dtype="<i8")
    assert ids[0] == 2 and ids[-1] == 3 and (ids != 0).all()  # [CLS] ... [SEP] in the small vocab: a full row


def test_awkward_sentences_are_tokenized_like_bert(small_inputs, awkward_manifest, tmp_path, capsys):
    path = tmp_path / "dev.tsv"
    path.write_bytes(tsv_bytes(AWKWARD_ROWS))
    out = tmp_path / "bin"
    manifest = preprocess(str(path), str(small_inputs.checkpoint / "vocab.txt"), str(out), 64, progress=False)
    assert "1 empty sentence(s) (line 6); each is encoded as [CLS] [SEP]" in capsys.readouterr().out
    expected = reference_features([s for s, _ in AWKWARD_ROWS], str(small_inputs.checkpoint / "vocab.txt"), 64)
    for name, array in zip(("input_ids", "segment_ids", "input_mask"), expected):
        written = np.stack([np.fromfile(out / name / f"input{i}.bin", dtype="<i8") for i in range(len(AWKWARD_ROWS))])
        np.testing.assert_array_equal(written, array, err_msg=name)
    assert manifest["lengths"][4] == 2  # the empty sentence is [CLS] [SEP]
    assert manifest["lengths"][5] == 64 and manifest["num_truncated"] == 1
    assert manifest["features_sha256"] == awkward_manifest["features_sha256"]  # not tied to the file's path


def test_preprocess_is_idempotent_and_never_silently_replaces(small_inputs, tmp_path, capsys):
    out, vocab = tmp_path / "bert_bin", str(small_inputs.checkpoint / "vocab.txt")
    preprocess(str(small_inputs.tsv), vocab, str(out), 64, progress=False)
    capsys.readouterr()
    preprocess(str(small_inputs.tsv), vocab, str(out), 64, progress=False)
    assert "up to date" in capsys.readouterr().out
    other = tmp_path / "other.tsv"
    other.write_text("sentence\tlabel\ngood film \t1\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="--overwrite"):
        preprocess(str(other), vocab, str(out), 64, progress=False)
    assert json.loads((out / "manifest.json").read_text())["num_samples"] == small_inputs.count  # kept
    preprocess(str(other), vocab, str(out), 64, overwrite=True, progress=False)
    assert json.loads((out / "manifest.json").read_text())["num_samples"] == 1
    assert sorted(os.listdir(tmp_path)) == ["bert_bin", "other.tsv"]  # no staging folders left


def test_manifest_mismatches_are_detected(small_features, tmp_path):
    out = tmp_path / "bert_bin"
    shutil.copytree(small_features, out)
    original = (out / "input_ids" / "input3.bin").read_bytes()
    (out / "input_ids" / "input3.bin").write_bytes(original[:-8])
    with pytest.raises(ManifestError, match=r"input3.bin: expected 512 bytes"):
        load_features(str(out))
    (out / "input_ids" / "input3.bin").write_bytes(original[::-1])
    with pytest.raises(ManifestError, match="do not match the sha256"):
        load_features(str(out))
    (out / "input_ids" / "input3.bin").write_bytes(original)
    os.remove(out / "input_mask" / "input7.bin")
    with pytest.raises(ManifestError, match=r"missing 1 \(e.g. input7.bin\)"):
        load_features(str(out))
    shutil.copy(out / "input_ids" / "input0.bin", out / "input_mask" / "input999.bin")
    with pytest.raises(ManifestError, match="extra 1"):
        load_features(str(out))


def test_disk_full_while_writing_features_leaves_nothing(small_inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(features_module, "open", enospc_after(10), raising=False)
    with pytest.raises(PipelineError, match="cannot write features to .*No space left on device"):
        preprocess(str(small_inputs.tsv), str(small_inputs.checkpoint / "vocab.txt"), str(tmp_path / "bin"), 64,
                   progress=False)
    assert os.listdir(tmp_path) == []  # no features folder, no staging folder
