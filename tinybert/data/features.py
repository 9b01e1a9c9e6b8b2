"""SST-2 sentences -> ModelZoo binary features (`<bin_dir>/{input_ids,segment_ids,input_mask}/input{i}.bin`,
int64 `[1, seq_len]`) and the manifest that lets later steps check them without re-tokenizing."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from tinybert import INPUT_NAMES
from tinybert.data.dataset import Dataset, file_sha256
from tinybert.errors import DataFormatError, ManifestError, OutputError, UsageError, expect
from tinybert.fileio import os_errors_as, publish_dir, read_json, staging_dir, write_json_atomic
from tinybert.progress import progress as progress_bar

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "tinybert-sst2-features/1"
FEATURE_DTYPE = np.dtype("<i8")  # ModelZoo files are little-endian int64
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[PAD]", "[UNK]")


@dataclass
class Features:
    """Model inputs for N samples, each array `[N, seq_len]` int64, plus what the manifest keeps."""

    input_ids: np.ndarray
    segment_ids: np.ndarray
    input_mask: np.ndarray
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """Real token count per sample ([CLS] and [SEP] included)."""
        return self.input_mask.sum(axis=1).astype(np.int64)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in INPUT_NAMES}

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.input_ids[indices], self.segment_ids[indices], self.input_mask[indices]


def feature_file_name(index: int) -> str:
    return f"input{index}.bin"


def load_wordpiece_tokenizer(vocab_path: str):
    """The BERT uncased tokenizer (BasicTokenizer + WordPiece) of the `tokenizers` library."""
    from tokenizers import BertWordPieceTokenizer

    expect(os.path.isfile(vocab_path), DataFormatError,
           f"{vocab_path}: expected the WordPiece vocab.txt of the checkpoint, found no such file")
    with open(vocab_path, encoding="utf-8") as handle:
        vocab = {line.rstrip("\n") for line in handle}
    missing = [token for token in SPECIAL_TOKENS if token not in vocab]
    expect(not missing, DataFormatError,
           f"{vocab_path}: expected a BERT vocabulary with {', '.join(SPECIAL_TOKENS)}, missing {', '.join(missing)}")
    # Same normalisation as the original BasicTokenizer: clean control chars, split CJK
    # characters, lower-case and strip accents.
    return BertWordPieceTokenizer(vocab_path, lowercase=True, strip_accents=None,
                                  clean_text=True, handle_chinese_chars=True)


def encode_sentences(sentences: list[str], vocab_path: str, seq_len: int, chunk_size: int = 4096,
                     progress: bool = False, tokenizer=None) -> Features:
    """Tokenize like the ModelZoo preprocessing: [CLS] tokens[:seq_len-2] [SEP], zero padding; `tokenizer`:
    `load_wordpiece_tokenizer(vocab_path)`'s, for callers that keep it across calls (classify)."""
    expect(seq_len >= 3, UsageError, f"expected max_seq_length >= 3, got {seq_len}")
    tokenizer = tokenizer or load_wordpiece_tokenizer(vocab_path)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    count = len(sentences)
    input_ids = np.zeros((count, seq_len), dtype=FEATURE_DTYPE)
    input_mask = np.zeros((count, seq_len), dtype=FEATURE_DTYPE)
    chunks = range(0, count, chunk_size)
    for start in progress_bar(chunks, progress, desc="tokenize", unit="chunk"):
        encodings = tokenizer.encode_batch(sentences[start:start + chunk_size], add_special_tokens=False)
        for offset, encoding in enumerate(encodings):
            ids = [cls_id, *encoding.ids[:seq_len - 2], sep_id]
            input_ids[start + offset, :len(ids)] = ids
            input_mask[start + offset, :len(ids)] = 1
    return Features(input_ids, np.zeros_like(input_ids), input_mask)


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=FEATURE_DTYPE).tobytes()).hexdigest()


def build_manifest(features: Features, dataset: Dataset, vocab_path: str) -> dict:
    lengths = features.lengths
    return {
        "format": MANIFEST_FORMAT,
        "num_samples": len(features),
        "max_seq_length": features.seq_len,
        "dtype": "int64",
        "byte_order": "little",
        "inputs": list(INPUT_NAMES),
        "file_name": "input{index}.bin",
        "source": {"path": os.path.abspath(dataset.path), "sha256": dataset.sha256, "bytes": dataset.num_bytes},
        "vocab_sha256": file_sha256(vocab_path),
        "num_truncated": int((lengths == features.seq_len).sum()),
        "features_sha256": {name: _digest(array) for name, array in features.arrays().items()},
        "labels": dataset.labels,
        "sample_ids": dataset.ids,
        "lengths": lengths.tolist(),
    }


def _write_feature_files(features: Features, out_dir: str, progress: bool) -> None:
    for name, array in features.arrays().items():
        folder = os.path.join(out_dir, name)
        os.makedirs(folder)
        for index in progress_bar(range(len(features)), progress, desc=f"write {name}", unit="file"):
            with open(os.path.join(folder, feature_file_name(index)), "wb") as handle:
                handle.write(array[index].tobytes())


def manifest_matches(manifest: dict, dataset: Dataset, vocab_path: str, seq_len: int) -> bool:
    return (manifest.get("format") == MANIFEST_FORMAT
            and manifest.get("source", {}).get("sha256") == dataset.sha256
            and manifest.get("vocab_sha256") == file_sha256(vocab_path)
            and manifest.get("max_seq_length") == seq_len)


def write_features(features: Features, manifest: dict, bin_dir: str, overwrite: bool = False,
                   progress: bool = False) -> None:
    """Write all feature files and the manifest into `bin_dir`, atomically as a whole folder."""
    if os.path.exists(bin_dir) and os.listdir(bin_dir) and not overwrite:
        raise OutputError(f"{bin_dir}: already holds features made from other input; "
                            "expected an empty or missing folder (pass --overwrite to replace it)")
    with os_errors_as(OutputError, f"write features to {bin_dir}"), staging_dir(bin_dir) as tmp:
        _write_feature_files(features, tmp, progress)
        write_json_atomic(os.path.join(tmp, MANIFEST_NAME), manifest)
        publish_dir(tmp, bin_dir)


def read_manifest(bin_dir: str) -> dict:
    path = os.path.join(bin_dir, MANIFEST_NAME)
    if not os.path.isdir(bin_dir):
        raise ManifestError(f"{bin_dir}: expected the feature folder written by the preprocess step, "
                            "found no such folder (run test/preprocess_data.sh first)")
    manifest = read_json(path, ManifestError, "the feature manifest written by the preprocess step")
    for key in ("num_samples", "max_seq_length", "inputs", "features_sha256"):
        expect(key in manifest, ManifestError, f"{path}: expected key '{key}', the manifest has {sorted(manifest)}")
    expect(manifest.get("format") == MANIFEST_FORMAT, ManifestError,
           f"{path}: expected format {MANIFEST_FORMAT!r}, got {manifest.get('format')!r}")
    count = manifest["num_samples"]
    expect(isinstance(count, int) and count > 0, ManifestError,
           f"{path}: expected a positive num_samples, got {count!r}")
    labels = manifest.get("labels")
    expect(labels is None or len(labels) == count, ManifestError,
           f"{path}: expected {count} labels, got {0 if labels is None else len(labels)}")
    return manifest


def features_provenance(bin_dir: str, manifest: dict) -> dict:
    """What a result summary records about its features, so postprocess can refuse other features' outputs."""
    return {"manifest": os.path.abspath(os.path.join(bin_dir, MANIFEST_NAME)), "num_samples": manifest["num_samples"],
            "source_sha256": manifest.get("source", {}).get("sha256"), "features_sha256": manifest["features_sha256"]}


def load_features(bin_dir: str, verify: bool = True) -> tuple[Features, dict]:
    """Read every feature file listed by the manifest, checking names, sizes and checksums."""
    manifest = read_manifest(bin_dir)
    count, seq_len = manifest["num_samples"], manifest["max_seq_length"]
    file_bytes = seq_len * FEATURE_DTYPE.itemsize
    arrays = {}
    for name in INPUT_NAMES:
        folder = os.path.join(bin_dir, name)
        expect(os.path.isdir(folder), ManifestError, f"{folder}: expected a folder of {count} feature files, found none")
        expected_names = {feature_file_name(i) for i in range(count)}
        present = set(os.listdir(folder))
        missing = sorted(expected_names - present, key=len)
        extra = sorted(present - expected_names)
        expect(not missing and not extra, ManifestError,
               f"{folder}: manifest lists {count} files input0.bin..input{count - 1}.bin; "
               + (f"missing {len(missing)} (e.g. {', '.join(missing[:3])}) " if missing else "")
               + (f"extra {len(extra)} (e.g. {', '.join(extra[:3])})" if extra else ""))
        array = np.empty((count, seq_len), dtype=FEATURE_DTYPE)
        for index in range(count):
            path = os.path.join(folder, feature_file_name(index))
            with open(path, "rb") as handle:
                data = handle.read()
            expect(len(data) == file_bytes, ManifestError,
                   f"{path}: expected {file_bytes} bytes (int64 [1, {seq_len}]), got {len(data)}")
            array[index] = np.frombuffer(data, dtype=FEATURE_DTYPE)
        if verify:
            expect(_digest(array) == manifest["features_sha256"].get(name), ManifestError,
                   f"{folder}: file contents do not match the sha256 recorded in {MANIFEST_NAME}; "
                   "the features changed after preprocessing (re-run test/preprocess_data.sh)")
        arrays[name] = array
    labels = manifest.get("labels")
    features = Features(**arrays, labels=None if labels is None else np.asarray(labels, dtype=np.int64))
    return features, manifest


def _warn_empty_sentences(dataset: Dataset) -> None:
    """Empty sentences are kept (a test set needs a prediction for every index) but flagged."""
    empty = [i for i, sentence in enumerate(dataset.sentences) if not sentence.strip()]
    if empty:
        lines = ", ".join(str(i + 2) for i in empty[:5])  # sample i is on line i + 2, after the header
        print(f"[WARN] {dataset.path}: {len(empty)} empty sentence(s) (line {lines}{' ...' if len(empty) > 5 else ''}); "
              "each is encoded as [CLS] [SEP]")


def preprocess(tsv_path: str, vocab_path: str, bin_dir: str, seq_len: int, overwrite: bool = False,
               progress: bool = True) -> dict:
    """The whole preprocess step; returns the manifest. Skips work when the features are current."""
    from tinybert.data.dataset import read_sst2_tsv

    dataset = read_sst2_tsv(tsv_path)
    manifest_path = os.path.join(bin_dir, MANIFEST_NAME)
    if os.path.isfile(manifest_path) and not overwrite:
        try:
            existing = read_manifest(bin_dir)
        except ManifestError:
            existing = None
        if existing is not None and manifest_matches(existing, dataset, vocab_path, seq_len):
            load_features(bin_dir)  # raises if the files were changed since
            print(f"[INFO] {bin_dir} is up to date with {tsv_path} ({existing['num_samples']} samples); nothing to do")
            return existing
    _warn_empty_sentences(dataset)
    features = encode_sentences(dataset.sentences, vocab_path, seq_len, progress=progress)
    manifest = build_manifest(features, dataset, vocab_path)
    write_features(features, manifest, bin_dir, overwrite=overwrite, progress=progress)
    print(f"[INFO] wrote {len(features)} samples x {len(INPUT_NAMES)} inputs (int64 [1, {seq_len}]) to {bin_dir}; "
          f"{manifest['num_truncated']} sentence(s) truncated to {seq_len} tokens")
    return manifest
