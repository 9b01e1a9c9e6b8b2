"""Which features a result folder's outputs were made from (the summary's record) and the one check that they
fit the manifest scored with, or the other folder compared; folders without a record pass here."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tinybert.errors import ResultFolderError, expect
from tinybert.data.features import MANIFEST_NAME, features_provenance
from tinybert.results.resultdir import read_summary


@dataclass(frozen=True)
class Recorded:
    """The features record of one result folder and the summary file it is in."""

    features: dict
    summary: str


@dataclass(frozen=True)
class Expected:
    """The features record outputs must match, and how a message names each part of it."""

    record: dict
    samples: str  # "the 872 samples of bert_bin/manifest.json"
    sentences: str  # "sentences of dev.tsv (sha256 54a9c12c77e4)"
    features: str  # "the features in bert_bin"
    advice: str  # what to do instead


def recorded_features(folder: str) -> Recorded | None:
    """What `folder`'s inference summary recorded about its features; None without such a record."""
    summary = read_summary(folder)
    if summary is None:
        return None
    args = summary.data.get("args")
    features = args.get("features") if isinstance(args, dict) else None
    return Recorded(features, summary.path) if isinstance(features, dict) else None


def check_record(folder: str, recorded: Recorded, expected: Expected) -> None:
    """Refuse outputs whose recorded features differ from `expected` in count, sentences or features."""
    got, want = recorded.features, expected.record
    made_from = f"(made from {got.get('manifest')}, recorded in {recorded.summary}); {expected.advice}"
    expect(got.get("num_samples") == want.get("num_samples"), ResultFolderError,
           f"{folder}: expected outputs for {expected.samples}, got outputs for {got.get('num_samples')} samples "
           f"{made_from}")
    expect(got.get("source_sha256") == want.get("source_sha256"), ResultFolderError,
           f"{folder}: expected outputs for {expected.sentences}, got outputs for another source file "
           f"(sha256 {str(got.get('source_sha256'))[:12]}) {made_from}")
    expect(got.get("features_sha256") == want.get("features_sha256"), ResultFolderError,
           f"{folder}: expected outputs for {expected.features}, got outputs for features with other checksums "
           f"{made_from}")


def of_manifest(manifest: dict, bin_dir: str) -> Expected:
    source = manifest.get("source") or {}
    return Expected(features_provenance(bin_dir, manifest),
                    f"the {manifest['num_samples']} samples of {os.path.join(bin_dir, MANIFEST_NAME)}",
                    f"sentences of {source.get('path')} (sha256 {str(source.get('sha256'))[:12]})",
                    f"the features in {bin_dir}",
                    "score them with the features they were made from (--bin_dir), or run the inference again on these")


def of_folder(folder: str, recorded: Recorded) -> Expected:
    record = recorded.features
    return Expected(record,
                    f"the {record.get('num_samples')} samples {folder} holds (recorded in {recorded.summary})",
                    f"the sentences {folder} was made from (source sha256 {str(record.get('source_sha256'))[:12]})",
                    f"the features {folder} was made from ({record.get('manifest')})",
                    "compare folders made from the same features")


def check_provenance(result_dir: str, manifest: dict, bin_dir: str) -> None:
    """Refuse outputs made from other features than `bin_dir`'s, by what their summary recorded."""
    recorded = recorded_features(result_dir)
    if recorded is not None:
        check_record(result_dir, recorded, of_manifest(manifest, bin_dir))


def check_same_features(folder_a: str, folder_b: str) -> None:
    """Two folders whose summaries both record their features must record the same ones."""
    a, b = recorded_features(folder_a), recorded_features(folder_b)
    if a is not None and b is not None:
        check_record(folder_b, b, of_folder(folder_a, a))
