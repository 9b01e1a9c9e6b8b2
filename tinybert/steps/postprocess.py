"""Scoring a result folder against the manifest: accuracy for labelled sets, predictions otherwise."""

from __future__ import annotations

import os

import numpy as np

from tinybert.errors import NonFiniteOutputError, OutputError, expect
from tinybert.data.features import feature_file_name, read_manifest
from tinybert.fileio import os_errors_as, write_json_atomic, write_text_atomic
from tinybert.results.provenance import check_provenance
from tinybert.results.resultdir import read_logits


def sample_stems(manifest: dict) -> list[str]:
    """Output stems as ais_bench derives them from the first input folder's file names."""
    return [os.path.splitext(feature_file_name(i))[0] for i in range(manifest["num_samples"])]


def resolve_result_dir(name_or_path: str, result_root: str) -> str:
    """The model card passes a folder name inside ./result; a path works too."""
    if os.path.isdir(name_or_path) and (os.sep in name_or_path or not os.path.isdir(os.path.join(result_root, name_or_path))):
        return name_or_path
    return os.path.join(result_root, name_or_path)


def classification_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict:
    """Accuracy, F1 of the positive class and the confusion matrix: scikit-learn's where it is installed, the same
    arithmetic in numpy where not (a GPU server's PyTorch image has no scikit-learn)."""
    import importlib.util

    if importlib.util.find_spec("sklearn") is None:
        return _binary_metrics(labels, predictions)
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    return {"correct": int((labels == predictions).sum()),
            "accuracy": 100.0 * float(accuracy_score(labels, predictions)),
            "f1": 100.0 * float(f1_score(labels, predictions, labels=[0, 1], zero_division=0)),
            "confusion_matrix": confusion_matrix(labels, predictions, labels=[0, 1]).tolist()}


def _binary_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict:
    matrix = [[int(((labels == truth) & (predictions == guess)).sum()) for guess in (0, 1)] for truth in (0, 1)]
    (_, false_pos), (false_neg, true_pos) = matrix
    f1 = 2 * true_pos / (2 * true_pos + false_pos + false_neg) if true_pos else 0.0
    correct = int((labels == predictions).sum())
    return {"correct": correct, "accuracy": 100.0 * correct / len(labels), "f1": 100.0 * f1,
            "confusion_matrix": matrix}


def write_predictions(path: str, sample_ids: list[str], predictions: np.ndarray, logits: np.ndarray | None = None) -> bool:
    """GLUE submission layout (`index<TAB>prediction`), optionally with the two logits. An existing
    file is kept: identical content means a re-run (returns False), other content is refused."""
    header = "index\tprediction" + ("\tlogit_0\tlogit_1" if logits is not None else "") + "\n"
    rows = [f"{sample_id}\t{int(prediction)}" + ("".join(f"\t{v:.6f}" for v in logits[row]) if logits is not None else "")
            + "\n" for row, (sample_id, prediction) in enumerate(zip(sample_ids, predictions))]
    with os_errors_as(OutputError, f"write predictions to {path}"):
        return write_text_atomic(path, header + "".join(rows), keep_existing=True,
                                 what="earlier predictions (choose another --predictions_out)")


def finite_samples(result_dir: str, stems: list[str], logits: np.ndarray,
                   skip_nonfinite: bool = False) -> tuple[np.ndarray, dict | None]:
    """Indices of the samples to score, and what was left out. NaN/inf logits are refused unless
    `skip_nonfinite`, which scores the finite rest and says so."""
    from tinybert.results.nonfinite import find_nonfinite

    found = find_nonfinite(result_dir, stems, logits)
    if not found.count:
        return np.arange(len(logits)), None
    kept = np.setdiff1d(np.arange(len(logits)), found.rows)
    expect(skip_nonfinite, NonFiniteOutputError,
           f"{result_dir}: expected finite logits, got NaN/inf in {found.describe()}; they would be scored as "
           f"a class (an fp16 overflow on the NPU gives these). Run again in higher precision, or pass "
           f"--skip_nonfinite to score the {len(kept)} finite outputs")
    expect(len(kept) > 0, NonFiniteOutputError,
           f"{result_dir}: expected some finite logits to score, got NaN/inf in all {found.describe()}")
    print(f"[WARN] {result_dir}: NaN/inf logits in {found.describe()}; left out (--skip_nonfinite): "
          f"the figures below are over {len(kept)} of {len(logits)} samples")
    return kept, found.as_dict()


def score(result_dir: str, bin_dir: str, predictions_out: str | None = None, with_logits: bool = False,
          json_out: str | None = None, skip_nonfinite: bool = False) -> dict:
    manifest = read_manifest(bin_dir)
    check_provenance(result_dir, manifest, bin_dir)
    stems = sample_stems(manifest)
    logits = read_logits(result_dir, stems)
    kept, left_out = finite_samples(result_dir, stems, logits, skip_nonfinite)
    predictions = logits[kept].argmax(axis=1)
    count = len(predictions)
    report = {"result_dir": result_dir, "num_samples": count}
    if left_out:
        report.update(num_outputs=len(logits), nonfinite_left_out=left_out)
    over = f"; over {count} of {len(logits)} samples, {len(logits) - count} non-finite left out" if left_out else ""
    labels = manifest.get("labels")
    if labels is not None:
        report.update(classification_metrics(np.asarray(labels)[kept], predictions))
        print(f"[INFO] accuracy: {report['accuracy']:.2f}% ({report['correct']}/{count} samples correct, "
              f"outputs from {result_dir}{over})")
        print(f"[INFO] F1 (positive class): {report['f1']:.2f}%; confusion matrix [[tn, fp], [fn, tp]]: "
              f"{report['confusion_matrix']}")
    elif predictions_out is None:
        predictions_out = f"{result_dir.rstrip(os.sep)}_predictions.tsv"
    if predictions_out:
        sample_ids = manifest.get("sample_ids") or [str(i) for i in range(len(logits))]
        written = write_predictions(predictions_out, [sample_ids[i] for i in kept], predictions,
                                    logits[kept] if with_logits else None)
        report["predictions"] = predictions_out
        print(f"[INFO] {count} predictions {'written to' if written else 'unchanged in'} {predictions_out}{over}")
    if json_out:
        with os_errors_as(OutputError, f"write {json_out}"):
            write_json_atomic(json_out, report)
    return report
