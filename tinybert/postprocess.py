"""Scoring a result folder against the manifest: accuracy for labelled sets, predictions otherwise."""

from __future__ import annotations

import os

import numpy as np

from .errors import ResultFolderError, expect
from .features import feature_file_name, load_features, read_manifest
from .fileio import os_errors_as, write_json_atomic
from .resultdir import read_logits


def sample_stems(manifest: dict) -> list[str]:
    """Output stems as ais_bench derives them from the first input folder's file names."""
    return [os.path.splitext(feature_file_name(i))[0] for i in range(manifest["num_samples"])]


def resolve_result_dir(name_or_path: str, result_root: str) -> str:
    """The model card passes a folder name inside ./result; a path works too."""
    if os.path.isdir(name_or_path) and (os.sep in name_or_path or not os.path.isdir(os.path.join(result_root, name_or_path))):
        return name_or_path
    return os.path.join(result_root, name_or_path)


def classification_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    return {"correct": int((labels == predictions).sum()),
            "accuracy": 100.0 * float(accuracy_score(labels, predictions)),
            "f1": 100.0 * float(f1_score(labels, predictions, labels=[0, 1], zero_division=0)),
            "confusion_matrix": confusion_matrix(labels, predictions, labels=[0, 1]).tolist()}


def write_predictions(path: str, sample_ids: list[str], predictions: np.ndarray, logits: np.ndarray | None = None) -> None:
    """GLUE submission layout (`index<TAB>prediction`), optionally with the two logits."""
    expect(not os.path.exists(path), ResultFolderError,
           f"{path}: already exists; refusing to overwrite earlier predictions (choose another --predictions_out)")
    with os_errors_as(ResultFolderError, f"write predictions to {path}"):
        tmp = f"{path}.partial"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write("index\tprediction" + ("\tlogit_0\tlogit_1" if logits is not None else "") + "\n")
            for row, (sample_id, prediction) in enumerate(zip(sample_ids, predictions)):
                extra = "".join(f"\t{v:.6f}" for v in logits[row]) if logits is not None else ""
                handle.write(f"{sample_id}\t{int(prediction)}{extra}\n")
        os.replace(tmp, path)


def score(result_dir: str, bin_dir: str, predictions_out: str | None = None, with_logits: bool = False,
          json_out: str | None = None) -> dict:
    manifest = read_manifest(bin_dir)
    logits = read_logits(result_dir, sample_stems(manifest))
    predictions = logits.argmax(axis=1)
    count = len(predictions)
    report = {"result_dir": result_dir, "num_samples": count}
    labels = manifest.get("labels")
    if labels is not None:
        report.update(classification_metrics(np.asarray(labels), predictions))
        print(f"[INFO] accuracy: {report['accuracy']:.2f}% ({report['correct']}/{count} samples correct, "
              f"outputs from {result_dir})")
        print(f"[INFO] F1 (positive class): {report['f1']:.2f}%; confusion matrix [[tn, fp], [fn, tp]]: "
              f"{report['confusion_matrix']}")
    elif predictions_out is None:
        predictions_out = f"{result_dir.rstrip(os.sep)}_predictions.tsv"
    if predictions_out:
        sample_ids = manifest.get("sample_ids") or [str(i) for i in range(count)]
        write_predictions(predictions_out, sample_ids, predictions, logits if with_logits else None)
        report["predictions"] = predictions_out
        print(f"[INFO] {count} predictions written to {predictions_out}")
    if json_out:
        write_json_atomic(json_out, report)
    return report


def pytorch_accuracy(model_dir: str, bin_dir: str, batch_size: int = 64, json_out: str | None = None) -> dict:
    """Accuracy of PyTorch eager on the checkpoint over the same features: the card's "pth" column."""
    from .export import torch_logits
    from .modeling import load_tinybert

    features, _ = load_features(bin_dir)
    expect(features.labels is not None, ResultFolderError, f"{bin_dir}: the features have no labels to score against")
    logits = torch_logits(load_tinybert(model_dir), features.batch(slice(None)), batch_size)
    report = {"backend": "pytorch", "num_samples": len(features),
              **classification_metrics(features.labels, logits.argmax(axis=1))}
    print(f"[INFO] PyTorch eager accuracy: {report['accuracy']:.2f}% "
          f"({report['correct']}/{len(features)} samples correct)")
    if json_out:
        write_json_atomic(json_out, report)
    return report
