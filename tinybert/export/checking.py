"""What every export shares: the checkpoint and the samples it is checked on, and one rule for
checking the written models against PyTorch eager and removing them when they fail."""

from __future__ import annotations

import contextlib
import os

import numpy as np

from ..errors import ExportError, UsageError, expect
from ..features import MANIFEST_NAME
from ..fileio import atomic_path
from ..runner import model_logits
from ..settings import MIN_OPSET


def write_model(path: str, write, note: str):
    """Write one model file atomically, `write(temporary_path)`, then print `note`; returns what
    `write` returned."""
    with atomic_path(path) as tmp:
        result = write(tmp)
    print(f"[INFO] {note}")
    return result


def load_checked_model(model_dir: str, opset: int, seq_len: int):
    """The PyTorch backend of the checkpoint, after checking the export options fit it."""
    from ..backends import create_backend

    expect(opset >= MIN_OPSET, UsageError, f"expected ONNX opset >= {MIN_OPSET} (erf GELU, ATC support), got {opset}")
    torch_backend = create_backend("pytorch", model_dir)
    max_positions = torch_backend.model.config.max_position_embeddings
    expect(seq_len <= max_positions, UsageError, f"expected seq_len <= {max_positions} (max positions), got {seq_len}")
    return torch_backend


def verification_inputs(features_dir: str | None, count: int, seq_len: int, vocab_size: int):
    """`count` real samples when the preprocess step has run (repeated when there are fewer), else
    a fixed pseudo-random set; and a description of them."""
    if features_dir and os.path.isfile(os.path.join(features_dir, MANIFEST_NAME)):
        from ..features import load_features

        features, _ = load_features(features_dir)
        expect(features.seq_len == seq_len, ExportError,
               f"{features_dir}: features have sequence length {features.seq_len}, expected {seq_len}")
        rows = np.arange(count) % len(features)
        return features.batch(rows), f"{count} real samples from {features_dir}"
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, seq_len + 1, size=count)
    input_mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int64)
    # Ids past the special and [unused] entries of a BERT vocabulary; any id of a small one.
    input_ids = rng.integers(min(1000, vocab_size // 2), vocab_size, size=(count, seq_len)) * input_mask
    return (input_ids, np.zeros_like(input_ids), input_mask), f"{count} synthetic samples (no features found)"


def check_models(paths: dict[str, str], arrays, reference: np.ndarray, description: str, batch_size: int,
                 bucket_edges: str, tolerance: float, gated, remove_on_failure, min_agreement: float | None = None) -> dict:
    """Run each model with ONNX Runtime and compare with PyTorch's `reference` logits, one line per
    model. When a `gated` model's logits are further than `tolerance` from PyTorch, or (with
    `min_agreement`, for reduced-precision models) any model predicts the same class for a smaller
    fraction of samples, the files in `remove_on_failure` are removed (a model that failed its check
    must not look ready) and an ExportError says which."""
    from ..backends import create_backend

    report: dict = {"max_abs_diff": {}, "agreement": {}}
    batching = ", length-bucketed" if bucket_edges != "off" else ""
    for key, path in paths.items():
        logits = model_logits(create_backend("onnxruntime", path), arrays, batch_size, bucket_edges)
        diff = float(np.abs(logits - reference).max())
        agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
        report["max_abs_diff"][key], report["agreement"][key] = diff, agreement
        print(f"[INFO] {os.path.basename(path)} vs PyTorch on {description}{batching}: "
              f"max abs logit difference {diff:.3e}, same prediction for {100 * agreement:.2f}%")
    failed = [key for key in gated if report["max_abs_diff"][key] > tolerance]
    disagreeing = [key for key in paths if min_agreement is not None and report["agreement"][key] < min_agreement]
    removed = _remove(remove_on_failure) if failed or disagreeing else []
    if disagreeing:
        worst = min(disagreeing, key=report["agreement"].get)
        raise ExportError(f"{paths[worst]}: same prediction as PyTorch for {100 * report['agreement'][worst]:.2f}% of "
                          f"{description}, expected at least {100 * min_agreement:.0f}% (removed it)")
    if failed:
        worst = max(failed, key=report["max_abs_diff"].get)
        raise ExportError(f"{paths[worst]}: logits differ from PyTorch by {report['max_abs_diff'][worst]:.3e}, "
                          f"expected at most {tolerance:.0e} (removed {', '.join(removed) or 'nothing'})")
    return report


def _remove(paths) -> list[str]:
    removed = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(os.path.basename(path))
    return removed
