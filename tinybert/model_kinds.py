"""The model kinds, one record each: its file name, the exporter that writes it, the quantizer its roofline chain
uses and what it needs; export, the settings and bench/shape_graphs.py read them. Standard library only."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Union

from tinybert.errors import UsageError

Target = Union[str, Callable]  # "module:function", imported only when called, or the function itself


@dataclass(frozen=True)
class ModelKind:
    name: str
    file: str  # its file in MODEL_DIR; {bs}: one per batch size
    title: str
    exporter: Target | None = None  # writes it (and its group): f(job: export.ExportJob); None: another tool (ATC)
    group: str = ""  # kinds one export writes together: any one missing or stale re-exports them all
    quantizer: Target | None = None  # its roofline chain: f(fp32_onnx, target, calibration_batches) on the chain
    needs: tuple[str, ...] = ()  # what its export needs beyond the checkpoint ("calibration": CALIB_FILE; a package)

    @property
    def per_batch_size(self) -> bool:
        return "{bs}" in self.file

    def chain_file(self) -> str:
        """Its roofline chain's file name: the chain quantized as this kind, in this kind's format."""
        return f"chain_{self.name}{os.path.splitext(self.file)[1]}"


_STATIC = "tinybert.export.static:write_static"
_FAST = "tinybert.export.fast:write_fast"
_GRAPHS = "tinybert.export.graphs"
MODEL_KINDS = [
    ModelKind("onnx", "TinyBERT_bs{bs}.onnx", "the card's static export", _STATIC, group="static"),
    ModelKind("sim", "TinyBERT_sim_bs{bs}.onnx", "... simplified: what ATC and ORT_MODEL=static use", _STATIC,
              group="static"),
    ModelKind("dynamic", "TinyBERT_dynamic.onnx", "batch and sequence axes dynamic, standard ops only", _FAST,
              group="fast"),
    ModelKind("sim_dynamic", "TinyBERT_sim_dynamic.onnx", "... simplified: what ATC turns into gear models", _FAST,
              group="fast"),
    ModelKind("fast", "TinyBERT_fast.onnx", "fp32, last layer at [CLS] only", _FAST, group="fast"),
    ModelKind("int8", "TinyBERT_int8.onnx", "fast, dynamically quantized to int8", _FAST, group="fast",
              quantizer=f"{_GRAPHS}:quantize_int8_chain"),
    ModelKind("int8_static", "TinyBERT_int8_static.onnx", "fast, int8 with calibrated activation scales (QDQ)",
              "tinybert.export.calibrated:write_static_int8", quantizer=f"{_GRAPHS}:quantize_static_int8",
              needs=("calibration",)),
    ModelKind("ov_int8", "TinyBERT_ov_int8.xml", "the OpenVINO int8 path: NNCF static int8 (IR, with a .bin)",
              "tinybert.export.openvino:write_openvino_int8", quantizer=f"{_GRAPHS}:quantize_nncf_int8",
              needs=("nncf", "calibration")),
    ModelKind("om", "TinyBERT_bs{bs}.om", "the card's static OM model (ATC: test/onnx2om.sh)"),
    ModelKind("om_gears", "TinyBERT_bs{bs}_dyn.om", "an OM gear model (ATC with DYNAMIC_DIMS)"),
]
CALIBRATION_RECORD_FILE = "TinyBERT_int8_static.calibration.json"  # the static int8 model's calibration inputs


def kind(name: str) -> ModelKind:
    for candidate in MODEL_KINDS:
        if candidate.name == name:
            return candidate
    raise UsageError(f"expected a model kind among {', '.join(k.name for k in MODEL_KINDS)}, got {name!r}")


def group(name: str) -> tuple[ModelKind, ...]:
    """The kinds one export writes together with `name` (itself alone when it has no group)."""
    own = kind(name)
    return tuple(k for k in MODEL_KINDS if k.group == own.group) if own.group else (own,)


def model_path(name: str, model_dir: str = ".", batch_size: int | None = None) -> str:
    """The file of model kind `name` in `model_dir` (batch size `batch_size` for the card's per-batch models)."""
    entry = kind(name)
    if entry.per_batch_size and batch_size is None:
        raise UsageError(f"expected a batch size for the {name} model {entry.file}, got none")
    return os.path.join(model_dir, entry.file.format(bs=batch_size))


def resolve(target: Target):
    """The function a record names: itself, or the "module:function" string's, its module imported now."""
    if callable(target):
        return target
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
