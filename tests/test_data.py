"""TSV reading, feature bytes against an independent tokenizer, and the manifest."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from conftest import SHARED_TSV, assert_clean_error, run_cli
from reference import reference_features

from tinybert.dataset import read_sst2_tsv
from tinybert.errors import DataFormatError, ManifestError, PipelineError
from tinybert.features import load_features, preprocess


def test_genuine_dev_set_is_read_completely():
    if not SHARED_TSV.is_file():
        pytest.skip("../shared/data/SST-2/dev.tsv is not beside this checkout")
    dataset = read_sst2_tsv(str(SHARED_TSV))
    assert len(dataset) == 872
    assert dataset.sha256 == "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"
    assert sorted(set(dataset.labels)) == [0, 1]
    assert dataset.sentences[0] == "it 's a charming and often affecting journey . "


@pytest.fixture(scope="module")
def features_dir(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("features") / "bert_bin"
    preprocess(str(inputs.tsv), str(inputs.checkpoint / "vocab.txt"), str(out), 64, progress=False)
    return out


def test_feature_files_equal_independent_computation(inputs, features_dir):
    dataset = read_sst2_tsv(str(inputs.tsv))
    expected = reference_features(dataset.sentences, str(inputs.checkpoint / "vocab.txt"), 64)
    for name, array in zip(("input_ids", "segment_ids", "input_mask"), expected):
        files = os.listdir(features_dir / name)
        assert len(files) == len(dataset)
        for index in range(len(dataset)):
            raw = (features_dir / name / f"input{index}.bin").read_bytes()
            assert raw == array[index].astype("<i8").tobytes(), f"{name}/input{index}.bin"


def test_feature_layout_is_little_endian_int64_rows(features_dir):
    raw = (features_dir / "input_ids" / "input0.bin").read_bytes()
    assert len(raw) == 64 * 8
    ids = np.frombuffer(raw, dtype="<i8")
    mask = np.frombuffer((features_dir / "input_mask" / "input0.bin").read_bytes(), dtype="<i8")
    length = int(mask.sum())
    assert ids[0] == 101 or ids[0] == 2  # [CLS] in bert-base-uncased / the small vocab
    assert (mask[:length] == 1).all() and (mask[length:] == 0).all() and (ids[length:] == 0).all()
    assert not np.frombuffer((features_dir / "segment_ids" / "input0.bin").read_bytes(), dtype="<i8").any()


def test_manifest_describes_the_features(inputs, features_dir):
    dataset = read_sst2_tsv(str(inputs.tsv))
    manifest = json.loads((features_dir / "manifest.json").read_text())
    assert manifest["num_samples"] == len(dataset)
    assert manifest["max_seq_length"] == 64
    assert manifest["labels"] == dataset.labels
    assert manifest["source"]["sha256"] == dataset.sha256
    features, _ = load_features(str(features_dir))
    assert manifest["lengths"] == features.lengths.tolist()
    if inputs.real:
        assert max(manifest["lengths"]) == 55 and manifest["num_truncated"] == 0


def test_long_sentences_are_truncated_to_seq_len(small_inputs, tmp_path):
    out = tmp_path / "bert_bin"
    manifest = preprocess(str(small_inputs.tsv), str(small_inputs.checkpoint / "vocab.txt"), str(out), 64,
                          progress=False)
    assert manifest["num_truncated"] >= 1
    ids = np.frombuffer((out / "input_ids" / "input5.bin").read_bytes(), dtype="<i8")
    assert ids[-1] == 3 and (ids != 0).all()  # [SEP] in the small vocab closes a full row


def test_preprocess_is_idempotent_and_never_silently_replaces(small_inputs, tmp_path, capsys):
    out, vocab = tmp_path / "bert_bin", str(small_inputs.checkpoint / "vocab.txt")
    preprocess(str(small_inputs.tsv), vocab, str(out), 64, progress=False)
    preprocess(str(small_inputs.tsv), vocab, str(out), 64, progress=False)
    assert "up to date" in capsys.readouterr().out
    other = tmp_path / "other.tsv"
    other.write_text("sentence\tlabel\ngood film \t1\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="--overwrite"):
        preprocess(str(other), vocab, str(out), 64, progress=False)
    preprocess(str(other), vocab, str(out), 64, overwrite=True, progress=False)
    assert json.loads((out / "manifest.json").read_text())["num_samples"] == 1
    assert sorted(os.listdir(tmp_path)) == ["bert_bin", "other.tsv"]  # no staging folders left


@pytest.mark.parametrize("content, fragment", [
    ("", "empty file"),
    ("text\tlabel\nfine \t1\n", "'sentence' column"),
    ("sentence\tlabel\ngood \t1\nbad\n", ":3: expected 2 tab-separated fields"),
    ("sentence\tlabel\ngood \t1\nbad \t2\n", ":3: expected label 0 or 1, got '2'"),
    ("sentence\tlabel\n", "at least one sentence"),
    ("sentence\tlabel\ngood \t1\n\nbad \t0\n", ":3: expected 2 tab-separated fields, got a blank line"),
])
def test_bad_tsv_is_refused_with_file_and_line(tmp_path, content, fragment):
    path = tmp_path / "dev.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        read_sst2_tsv(str(path))
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_missing_tsv_via_cli(small_inputs, tmp_path):
    proc = run_cli("preprocess", "--input_file", tmp_path / "nope.tsv", "--vocab_file",
                   small_inputs.checkpoint / "vocab.txt", "--output_dir", tmp_path / "bin", cwd=tmp_path)
    assert_clean_error(proc, "nope.tsv", "expected the SST-2 TSV file", code=2)
    assert not (tmp_path / "bin").exists()


def test_manifest_mismatches_are_detected(small_inputs, tmp_path):
    out = tmp_path / "bert_bin"
    preprocess(str(small_inputs.tsv), str(small_inputs.checkpoint / "vocab.txt"), str(out), 64, progress=False)
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
