"""Holding one result folder against another, sample by sample: the same weights score differently on two devices
or precisions, and this shows where (logit differences, agreement, flips); optional limits make it a CI gate."""

from __future__ import annotations

import os

import numpy as np

from tinybert.errors import PipelineError, ResultFolderError, ThresholdExceededError, UsageError, expect
from tinybert.data.features import MANIFEST_NAME, read_manifest
from tinybert.fileio import os_errors_as, write_json_atomic
from tinybert.results.nonfinite import find_nonfinite, output_names
from tinybert.steps.postprocess import sample_stems
from tinybert.results.provenance import check_provenance, check_same_features
from tinybert.results.resultdir import read_logits

DEFAULT_TOP = 10
SENTENCE_WIDTH = 90  # characters of a sentence shown in the text output (the JSON keeps all of it)


def parse_agreement(text: str) -> float:
    """`--min_agreement`: a fraction in [0, 1] (`0.99`) or a percentage (`99%`)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        value = float("nan")
    expect(0.0 <= value <= 1.0, UsageError,
           f"--min_agreement: expected a fraction in [0, 1] such as 0.99, or a percentage such as 99%, got {text!r}")
    return value


def source_sentences(manifest: dict) -> tuple[list[str] | None, str]:
    """The sentences of the file the features were made from, or None and why they cannot be shown."""
    from tinybert.data.dataset import read_sst2_tsv

    source = manifest.get("source") or {}
    path = source.get("path")
    if not path:
        return None, "the manifest records no source file"
    if not os.path.isfile(path):
        return None, f"{path}: the source file the manifest records is gone"
    try:
        dataset = read_sst2_tsv(path)
    except PipelineError as exc:
        return None, f"the source file is no longer readable ({exc})"
    if dataset.sha256 != source.get("sha256") or len(dataset) != manifest["num_samples"]:
        return None, f"{path}: changed since the features were made (its sha256 differs from the manifest's)"
    return dataset.sentences, path


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity; two zero rows count as identical, one zero row as unrelated."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = (np.abs(a).sum(axis=1) == 0) & (np.abs(b).sum(axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = (a * b).sum(axis=1) / norms
    return np.where(norms > 0, np.clip(cosine, -1.0, 1.0), np.where(both_zero, 1.0, 0.0))


def _shorten(text: str, width: int = SENTENCE_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def compare(result_a: str, result_b: str, bin_dir: str, top: int = DEFAULT_TOP, json_out: str | None = None,
            max_abs_diff: float | None = None, min_agreement: float | None = None) -> dict:
    expect(top >= 0, UsageError, f"expected --top >= 0, got {top}")
    expect(max_abs_diff is None or max_abs_diff >= 0, UsageError,
           f"expected a non-negative --max_abs_diff, got {max_abs_diff}")
    manifest = read_manifest(bin_dir)
    stems = sample_stems(manifest)
    check_same_features(result_a, result_b)
    logits, nonfinite, formats = {}, {}, {}
    for key, folder in (("A", result_a), ("B", result_b)):
        logits[key], nonfinite[key], formats[key] = _read_side(folder, manifest, bin_dir, stems)
    count = len(stems)
    labels = manifest.get("labels")
    labels = None if labels is None else np.asarray(labels)
    sample_ids = manifest.get("sample_ids")

    finite = np.ones(count, dtype=bool)
    finite[nonfinite["A"].rows] = False
    finite[nonfinite["B"].rows] = False
    kept = np.flatnonzero(finite)
    report: dict = {
        "a": {"path": result_a, "format": formats["A"], "nonfinite": nonfinite["A"].as_dict()},
        "b": {"path": result_b, "format": formats["B"], "nonfinite": nonfinite["B"].as_dict()},
        "features": {"bin_dir": bin_dir, "manifest": os.path.join(bin_dir, MANIFEST_NAME),
                     "source": (manifest.get("source") or {}).get("path")},
        "num_samples": count, "compared_samples": int(len(kept)), "left_out_nonfinite": int(count - len(kept)),
    }
    row_diff = _add_figures(report, logits["A"][kept], logits["B"][kept], None if labels is None else labels[kept])

    sentences, sentence_source = source_sentences(manifest) if top else (None, "")
    # Samples with NaN/inf outputs differ most of all: they come first, then the largest differences.
    sample_diff = np.full(count, np.inf)
    sample_diff[kept] = row_diff
    order = np.argsort(-sample_diff, kind="stable")[:top]
    report["top"] = [_top_row(rank + 1, int(i), logits, finite=finite[i], diff=sample_diff[i], stems=stems,
                              folder=result_a, sample_ids=sample_ids, labels=labels, sentences=sentences)
                     for rank, i in enumerate(order)]
    report["sentences"] = {"available": sentences is not None, "source": sentence_source} if top else None

    failures = _gate_failures(report, max_abs_diff, min_agreement)
    report["gates"] = {"max_abs_diff": max_abs_diff, "min_agreement": min_agreement, "failures": failures,
                       "passed": not failures}
    _print_report(report, nonfinite, labels is not None, bool(sample_ids))
    if json_out:
        with os_errors_as(ResultFolderError, f"write {json_out}"):
            write_json_atomic(json_out, report)
        print(f"[INFO] comparison written to {json_out}")
    if failures:
        raise ThresholdExceededError(f"{result_b} vs {result_a}: " + "; ".join(failures))
    return report


def _read_side(folder: str, manifest: dict, bin_dir: str, stems: list[str]):
    """One folder's logits, its non-finite outputs and its format, once its provenance is checked."""
    check_provenance(folder, manifest, bin_dir)
    logits = read_logits(folder, stems)
    extension = os.path.splitext(output_names(folder, stems)[0])[1]
    return logits, find_nonfinite(folder, stems, logits), extension.lstrip(".").upper()


def _add_figures(report: dict, a: np.ndarray, b: np.ndarray, truth: np.ndarray | None) -> np.ndarray:
    """Differences, cosine similarity, agreement and flips over the rows of samples finite in both, and
    each side's accuracy where labelled; returns each row's largest difference."""
    kept = len(a)
    diff = np.abs(a - b)
    cosine = _cosine(a, b)
    pred_a, pred_b = a.argmax(axis=1), b.argmax(axis=1)
    agree = int((pred_a == pred_b).sum())
    report.update({
        "max_abs_diff": float(diff.max()) if kept else None,
        "mean_abs_diff": float(diff.mean()) if kept else None,
        "cosine_similarity": {"min": float(cosine.min()), "mean": float(cosine.mean())} if kept else None,
        "agreement": {"same_prediction": agree, "of": kept, "fraction": agree / kept if kept else None},
        "flips": {"total": kept - agree,
                  "negative_to_positive": int(((pred_a == 0) & (pred_b == 1)).sum()),
                  "positive_to_negative": int(((pred_a == 1) & (pred_b == 0)).sum())},
    })
    if truth is not None and kept:
        right_a, right_b = pred_a == truth, pred_b == truth
        report["a"].update(correct=int(right_a.sum()), accuracy=100.0 * float(right_a.mean()))
        report["b"].update(correct=int(right_b.sum()), accuracy=100.0 * float(right_b.mean()))
        report["flips"].update(a_right_b_wrong=int((right_a & ~right_b).sum()),
                               a_wrong_b_right=int((~right_a & right_b).sum()))
    return diff.max(axis=1) if kept else np.zeros(0)


def _json_number(value: float):
    """Floats as JSON numbers; NaN and infinities as strings (strict JSON has no such numbers)."""
    return float(value) if np.isfinite(value) else str(float(value))


def _prediction(row: np.ndarray) -> int | None:
    return int(row.argmax()) if np.isfinite(row).all() else None


def _top_row(rank: int, i: int, logits: dict, finite: bool, diff: float, stems: list[str], folder: str,
             sample_ids: list | None, labels: np.ndarray | None, sentences: list[str] | None) -> dict:
    row_a, row_b = logits["A"][i], logits["B"][i]
    return {"rank": rank, "sample": i, "output": output_names(folder, [stems[i]])[0],
            "id": sample_ids[i] if sample_ids else None, "label": int(labels[i]) if labels is not None else None,
            "logits_a": [_json_number(v) for v in row_a], "logits_b": [_json_number(v) for v in row_b],
            "prediction_a": _prediction(row_a), "prediction_b": _prediction(row_b),
            "max_abs_diff": float(diff) if finite else None, "nonfinite": not finite,
            "sentence": sentences[i] if sentences is not None else None}


def _gate_failures(report: dict, max_abs_diff: float | None, min_agreement: float | None) -> list[str]:
    """What exceeds the limits asked for. Any non-finite output fails a limit: it has no finite difference."""
    failures = []
    if max_abs_diff is None and min_agreement is None:
        return failures
    left_out = report["left_out_nonfinite"]
    if left_out:
        failures.append(f"expected finite outputs in both folders to hold to the limits, got {left_out} sample(s) "
                        "with NaN/inf outputs")
    if max_abs_diff is not None and report["max_abs_diff"] is not None and report["max_abs_diff"] > max_abs_diff:
        failures.append(f"expected max |logit difference| <= {max_abs_diff:g} (--max_abs_diff), "
                        f"got {report['max_abs_diff']:.6g}")
    fraction = report["agreement"]["fraction"]
    if min_agreement is not None and fraction is not None and fraction < min_agreement:
        failures.append(f"expected the same prediction for >= {100 * min_agreement:g}% of samples (--min_agreement), "
                        f"got {100 * fraction:.2f}% ({report['agreement']['same_prediction']}/{report['agreement']['of']})")
    return failures


def _print_report(report: dict, nonfinite: dict, labelled: bool, with_ids: bool) -> None:
    count, kept = report["num_samples"], report["compared_samples"]
    for key in ("a", "b"):
        side = report[key]
        print(f"[INFO] {key.upper()}: {side['path']} ({side['format']}, {count} outputs)")
    print(f"[INFO] features: {report['features']['manifest']} ({count} samples of {report['features']['source']})")
    for key in ("A", "B"):
        found = nonfinite[key]
        if found.count:
            print(f"[WARN] {key} has NaN/inf logits in {found.describe()}")
        else:
            print(f"[INFO] {key}: all {count} outputs finite")
    if report["left_out_nonfinite"]:
        print(f"[WARN] the figures below are over the {kept} of {count} samples finite in both "
              f"({report['left_out_nonfinite']} left out)")
    if not kept:
        print("[WARN] no sample is finite in both folders: no differences to measure")
    else:
        _print_figures(report, labelled)
    if report["top"]:
        _print_top(report, labelled, with_ids)


def _print_figures(report: dict, labelled: bool) -> None:
    kept = report["compared_samples"]
    print(f"[INFO] |logit difference|: max {report['max_abs_diff']:.6g}, mean {report['mean_abs_diff']:.6g}")
    cos = report["cosine_similarity"]
    print(f"[INFO] cosine similarity of the logits per sample: min {cos['min']:.6f}, mean {cos['mean']:.6f}")
    agreement = report["agreement"]
    print(f"[INFO] same prediction: {agreement['same_prediction']}/{kept} samples ({100 * agreement['fraction']:.2f}%)")
    if labelled:
        a, b = report["a"], report["b"]
        print(f"[INFO] accuracy: A {a['accuracy']:.2f}% ({a['correct']}/{kept}), B {b['accuracy']:.2f}% ({b['correct']}/{kept})")
    flips = report["flips"]
    line = (f"[INFO] flips: {flips['total']} (A negative -> B positive: {flips['negative_to_positive']}, "
            f"A positive -> B negative: {flips['positive_to_negative']})")
    if labelled:
        line += f"; A right -> B wrong: {flips['a_right_b_wrong']}, A wrong -> B right: {flips['a_wrong_b_right']}"
    print(line)


def _print_top(report: dict, labelled: bool, with_ids: bool) -> None:
    sentences = report["sentences"]
    if not sentences["available"]:
        print(f"[WARN] sentences not shown: {sentences['source']}")
    print(f"[INFO] the {len(report['top'])} samples that differ most (* marks a flip; NaN/inf outputs first):")
    key_column = "label" if labelled else ("id" if with_ids else "")
    print(f"  {'rank':>4} {'sample':>7} {key_column:>6}   {'A logits':>21} {'A':>2}   {'B logits':>21} {'B':>2}  "
          f"{'|diff|':>9}  sentence")
    for row in report["top"]:
        key = row["label"] if labelled else (row["id"] if with_ids else "")
        pa, pb = row["prediction_a"], row["prediction_b"]
        flip = "*" if None not in (pa, pb) and pa != pb else " "
        la, lb = ([float(v) for v in row[k]] for k in ("logits_a", "logits_b"))
        diff = "NaN/inf" if row["nonfinite"] else f"{row['max_abs_diff']:.3g}"
        sentence = _shorten(row["sentence"]) if row["sentence"] is not None else "(unavailable)"
        print(f"  {row['rank']:>4} {row['sample']:>7} {str(key):>6}   {la[0]:>10.6f} {la[1]:>10.6f} "
              f"{'-' if pa is None else pa:>2}   {lb[0]:>10.6f} {lb[1]:>10.6f} {'-' if pb is None else pb:>2}{flip} "
              f"{diff:>9}  {sentence}")
