"""Checkpoint -> ONNX models, each checked against PyTorch eager before it is kept.

- `export`: the model card's static pair for one batch size, `TinyBERT_bs{bs}.onnx` (TorchScript
  exporter, opset 11) and `TinyBERT_sim_bs{bs}.onnx` (onnx-simplifier): what ATC and
  ORT_MODEL=static use.
- `export_fast_models`: the batch-independent models: `TinyBERT_dynamic.onnx` (batch and sequence
  axes dynamic, standard ops only), `TinyBERT_sim_dynamic.onnx` (simplified: what ATC turns into
  gear models), `TinyBERT_fast.onnx` (fp32, the last layer computed at [CLS]
  only: the CPU paths' graph) and `TinyBERT_int8.onnx` (the fast model, dynamically quantized).
- `export_static_int8`: `TinyBERT_int8_static.onnx`, the fast model in static int8 calibrated on a seeded sample of a
  training file, with its calibration record (cached).

Every model goes through `checking.check_models`: a model that fails its check is removed.
"""

from .calibrated import export_static_int8
from .fast import export_fast_models
from .static import ExportReport, export

__all__ = ["ExportReport", "export", "export_fast_models", "export_static_int8"]
