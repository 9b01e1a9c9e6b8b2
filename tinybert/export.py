"""Checkpoint -> ONNX (TorchScript exporter, default opset 11) -> onnx-simplifier, checked against PyTorch."""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass

import numpy as np

from . import DEFAULT_SEQ_LEN, INPUT_NAMES, OUTPUT_NAME
from .errors import ExportError, UsageError, expect
from .fileio import os_errors_as

DEFAULT_OPSET = 11
DEFAULT_TOLERANCE = 1e-4
VERIFY_SAMPLES = 32


def onnx_name(batch_size: int) -> str:
    return f"TinyBERT_bs{batch_size}.onnx"


def simplified_onnx_name(batch_size: int) -> str:
    return f"TinyBERT_sim_bs{batch_size}.onnx"


@dataclass
class ExportReport:
    onnx_path: str
    simplified_path: str
    max_abs_diff: dict  # file -> max |logits_onnxruntime - logits_pytorch|
    num_checked: int


def _verification_inputs(features_dir: str | None, batch_size: int, seq_len: int, vocab_size: int,
                         count: int | None = None):
    """Real features when the preprocess step has run, else a fixed pseudo-random batch."""
    count = count or batch_size * max(1, VERIFY_SAMPLES // batch_size)
    if features_dir and os.path.isfile(os.path.join(features_dir, "manifest.json")):
        from .features import load_features

        features, _ = load_features(features_dir)
        expect(features.seq_len == seq_len, ExportError,
               f"{features_dir}: features have sequence length {features.seq_len}, expected {seq_len}")
        rows = np.arange(count) % len(features)  # repeat samples when fewer than needed
        return features.batch(rows), f"{count} real samples from {features_dir}"
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, seq_len + 1, size=count)
    input_mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int64)
    # Ids past the special and [unused] entries of a BERT vocabulary; any id of a small one.
    input_ids = rng.integers(min(1000, vocab_size // 2), vocab_size, size=(count, seq_len)) * input_mask
    return (input_ids, np.zeros_like(input_ids), input_mask), f"{count} synthetic samples (no features found)"


def torch_logits(model, arrays, batch_size: int) -> np.ndarray:
    import torch

    outputs = []
    with torch.inference_mode():
        for start in range(0, len(arrays[0]), batch_size):
            batch = [torch.from_numpy(np.ascontiguousarray(a[start:start + batch_size])) for a in arrays]
            outputs.append(model(*batch).numpy())
    return np.concatenate(outputs)


def onnxruntime_logits(onnx_path: str, arrays, batch_size: int) -> np.ndarray:
    from .backends import create_backend

    backend = create_backend("onnxruntime", onnx_path)
    return np.concatenate([backend.run(*(a[s:s + batch_size] for a in arrays))
                           for s in range(0, len(arrays[0]), batch_size)])


def _export_torchscript(model, example, path: str, opset: int, dynamic: bool) -> None:
    import torch

    dynamic_axes = None
    if dynamic:
        dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
        dynamic_axes[OUTPUT_NAME] = {0: "batch"}
    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(model, tuple(torch.from_numpy(a) for a in example), path,
                          input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                          opset_version=opset, dynamo=False, do_constant_folding=True,
                          dynamic_axes=dynamic_axes)


def _simplify(source: str, target: str) -> None:
    import onnx
    import onnxsim

    model, ok = onnxsim.simplify(onnx.load(source))
    expect(ok, ExportError, f"{source}: onnx-simplifier could not validate the simplified model")
    onnx.save(model, target)


def _save_atomically(writer, path: str) -> None:
    tmp = f"{path}.partial"
    try:
        writer(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def export(model_dir: str, batch_size: int, out_dir: str = ".", opset: int = DEFAULT_OPSET,
           seq_len: int = DEFAULT_SEQ_LEN, features_dir: str | None = None,
           tolerance: float = DEFAULT_TOLERANCE) -> ExportReport:
    """Write TinyBERT_bs{bs}.onnx and TinyBERT_sim_bs{bs}.onnx and check both against PyTorch."""
    from .modeling import load_tinybert

    expect(batch_size > 0, UsageError, f"expected a positive batch size, got {batch_size}")
    expect(opset >= 11, UsageError, f"expected ONNX opset >= 11 (erf GELU, ATC support), got {opset}")
    model = load_tinybert(model_dir)
    expect(seq_len <= model.config.max_position_embeddings, UsageError,
           f"expected seq_len <= {model.config.max_position_embeddings} (max positions), got {seq_len}")
    arrays, description = _verification_inputs(features_dir, batch_size, seq_len, model.config.vocab_size)
    onnx_path = os.path.join(out_dir, onnx_name(batch_size))
    simplified_path = os.path.join(out_dir, simplified_onnx_name(batch_size))
    with os_errors_as(ExportError, f"write ONNX files to {out_dir}"):
        os.makedirs(out_dir, exist_ok=True)
        example = tuple(a[:batch_size] for a in arrays)
        _save_atomically(lambda p: _export_torchscript(model, example, p, opset, dynamic=False), onnx_path)
        print(f"[INFO] exported {onnx_path} (opset {opset}, inputs {', '.join(INPUT_NAMES)} int64 "
              f"[{batch_size}, {seq_len}], output {OUTPUT_NAME} float32 [{batch_size}, 2])")
        _save_atomically(lambda p: _simplify(onnx_path, p), simplified_path)
        print(f"[INFO] simplified -> {simplified_path}")
    reference = torch_logits(model, arrays, batch_size)
    diffs = {}
    for path in (onnx_path, simplified_path):
        diff = float(np.abs(onnxruntime_logits(path, arrays, batch_size) - reference).max())
        diffs[path] = diff
        print(f"[INFO] max abs logit difference ONNX Runtime vs PyTorch, {os.path.basename(path)}: "
              f"{diff:.3e} on {description}")
    worst = max(diffs, key=diffs.get)
    if diffs[worst] > tolerance:
        from .optimize import remove_models

        remove_models(diffs)  # a model that failed its check must not look ready
        raise ExportError(f"{worst}: logits differ from PyTorch by {diffs[worst]:.3e}, expected at most "
                          f"{tolerance:.0e} (both ONNX files were removed)")
    return ExportReport(onnx_path, simplified_path, diffs, len(reference))
