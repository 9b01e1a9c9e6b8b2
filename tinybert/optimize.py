"""The fast models: one dynamic-shape export, fused for ONNX Runtime on the CPU, and its int8 twin.

- `TinyBERT_dynamic.onnx`: batch and sequence axes dynamic, standard ONNX ops only (the source of
  the models below); `TinyBERT_sim_dynamic.onnx`, the same simplified by onnx-simplifier, is what
  ATC turns into Ascend gear models. (The fusions below need the unsimplified graph: simplifying
  merges the mask's two Unsqueezes, which ONNX Runtime's attention pattern does not expect.)
- `TinyBERT_fast.onnx`: ONNX Runtime's transformer fusions (EmbedLayerNormalization, Attention,
  SkipLayerNormalization, BiasGelu) applied; fp32, logits checked against PyTorch.
- `TinyBERT_int8.onnx`: dynamic int8 quantization of the fused model (weights int8, activations
  quantized per batch at run time); its agreement with PyTorch is reported, and the benchmark
  decides whether it meets the accuracy bounds.

The fused models contain ONNX Runtime contrib ops: they run on ONNX Runtime only, not through ATC.
"""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np

from . import DEFAULT_SEQ_LEN
from .errors import ExportError, UsageError, expect
from .fileio import os_errors_as

DYNAMIC_NAME = "TinyBERT_dynamic.onnx"
SIM_DYNAMIC_NAME = "TinyBERT_sim_dynamic.onnx"
FAST_NAME = "TinyBERT_fast.onnx"
INT8_NAME = "TinyBERT_int8.onnx"
FAST_MODELS = {"fast": FAST_NAME, "int8": INT8_NAME, "dynamic": DYNAMIC_NAME, "sim_dynamic": SIM_DYNAMIC_NAME}
VERIFY_LIMIT = 1024  # samples compared with PyTorch after export
VERIFY_BATCH = 32


def fuse_for_cpu(source: str, target: str, num_heads: int, hidden_size: int) -> dict:
    """Apply ONNX Runtime's BERT fusions; returns the fused operator counts."""
    from onnxruntime.transformers import optimizer

    with contextlib.redirect_stdout(io.StringIO()):
        # opt_level 0: only the Python pattern fusions; the session applies its own graph optimisations.
        model = optimizer.optimize_model(source, model_type="bert", num_heads=num_heads,
                                         hidden_size=hidden_size, opt_level=0)
    counts = {op: n for op, n in model.get_fused_operator_statistics().items() if n}
    model.save_model_to_file(target)
    return counts


def quantize_int8(source: str, target: str) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # its advice to run shape pre-processing does not apply here
    try:
        # Contrib ops (Attention, ...) have no ONNX shape inference; their outputs are float32.
        quantize_dynamic(source, target, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        logging.disable(logging.NOTSET)


def _check_fusions(counts: dict, num_layers: int, path: str) -> None:
    """Without fused attention the fast model is barely faster than the static one: say so loudly."""
    expected = {"Attention": num_layers, "SkipLayerNormalization": 2 * num_layers, "EmbedLayerNormalization": 1}
    missing = {op: n for op, n in expected.items() if counts.get(op, 0) != n}
    expect(not missing, ExportError,
           f"{path}: expected ONNX Runtime fusions {expected}, got {counts}; the graph changed shape "
           "(was the model exported through another attention implementation?)")


def export_fast_models(model_dir: str, out_dir: str = ".", opset: int = 11, seq_len: int = DEFAULT_SEQ_LEN,
                       features_dir: str | None = None, tolerance: float = 1e-4) -> dict:
    """Write the dynamic (plain and simplified), fused and int8 models; fail when an fp32 model's
    logits leave `tolerance`."""
    from .export import _export_torchscript, _save_atomically, _simplify, _verification_inputs, torch_logits
    from .modeling import load_tinybert

    expect(opset >= 11, UsageError, f"expected ONNX opset >= 11, got {opset}")
    model = load_tinybert(model_dir)
    config = model.config
    count = VERIFY_LIMIT
    if features_dir and os.path.isfile(os.path.join(features_dir, "manifest.json")):
        from .features import read_manifest

        count = min(count, read_manifest(features_dir)["num_samples"])
    arrays, description = _verification_inputs(features_dir, VERIFY_BATCH, seq_len, config.vocab_size, count)
    paths = {key: os.path.join(out_dir, name) for key, name in FAST_MODELS.items()}
    with os_errors_as(ExportError, f"write ONNX files to {out_dir}"):
        os.makedirs(out_dir, exist_ok=True)
        example = tuple(a[:2, :16] for a in arrays)  # any shape: both axes are exported as dynamic
        _save_atomically(lambda p: _export_torchscript(model, example, p, opset, dynamic=True), paths["dynamic"])
        print(f"[INFO] exported {paths['dynamic']} (opset {opset}, inputs int64 [batch, sequence])")
        _save_atomically(lambda p: _simplify(paths["dynamic"], p), paths["sim_dynamic"])
        print(f"[INFO] simplified -> {paths['sim_dynamic']} (for ATC gear models)")
        counts = {}
        _save_atomically(lambda p: counts.update(fuse_for_cpu(paths["dynamic"], p, config.num_attention_heads,
                                                              config.hidden_size)), paths["fast"])
        _check_fusions(counts, config.num_hidden_layers, paths["fast"])
        print(f"[INFO] fused for ONNX Runtime -> {paths['fast']} ({', '.join(f'{k} x{v}' for k, v in counts.items())})")
        _save_atomically(lambda p: quantize_int8(paths["fast"], p), paths["int8"])
        print(f"[INFO] dynamic int8 quantization -> {paths['int8']}")
    reference = torch_logits(model, arrays, VERIFY_BATCH)
    report = {"paths": paths, "fusions": counts, "max_abs_diff": {}, "agreement": {}}
    for key in ("dynamic", "sim_dynamic", "fast", "int8"):
        logits = bucketed_logits(paths[key], arrays, VERIFY_BATCH)
        diff = float(np.abs(logits - reference).max())
        agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
        report["max_abs_diff"][key], report["agreement"][key] = diff, agreement
        print(f"[INFO] {os.path.basename(paths[key])} vs PyTorch on {description}, length-bucketed: "
              f"max abs logit difference {diff:.3e}, same prediction for {100 * agreement:.2f}%")
    for key in ("dynamic", "sim_dynamic", "fast"):
        if report["max_abs_diff"][key] > tolerance:
            remove_models(paths.values())  # a model that failed its check must not look ready
            raise ExportError(f"{paths[key]}: logits differ from PyTorch by {report['max_abs_diff'][key]:.3e}, "
                              f"expected at most {tolerance:.0e} (the fast models were removed)")
    return report


def remove_models(paths) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def bucketed_logits(model_path: str, arrays, batch_size: int, **options) -> np.ndarray:
    from .backends import create_backend
    from .bucketing import plan_batches, real_lengths, run_batches

    runner = create_backend("onnxruntime", model_path, **options)
    batches = plan_batches(real_lengths(arrays[2]), batch_size)
    return run_batches(runner.run, arrays, batches)[0]
