"""Checkpoint -> ONNX models (the card's static pair, the batch-independent fast models, static int8, OpenVINO
int8), each checked against PyTorch eager by `checking.check_models` and removed when it fails."""

from __future__ import annotations

import os

from tinybert.errors import UsageError, expect
from tinybert.settings import FAST_MODEL_KINDS, OPSET, SEQ_LEN, model_path
from tinybert.export.calibrated import Calibration, export_static_int8
from tinybert.export.checking import check_models, fast_verification, stale
from tinybert.export.fast import export_fast_models
from tinybert.export.static import ExportReport, export


def ensure_model(kind: str, model_dir: str, out_dir: str, batch_size: int | None = None,
                 features_dir: str | None = None, calibration: Calibration | None = None, opset: int = OPSET,
                 seq_len: int = SEQ_LEN) -> str:
    """The model file of `kind` in `out_dir`, written first by its exporter when missing or older than
    the weights; `model_dir` itself for the checkpoint."""
    from tinybert.model.modeling import weights_path
    from tinybert.registry import CHECKPOINT

    if kind == CHECKPOINT:
        return model_dir
    path = model_path(kind, out_dir, batch_size)
    if kind in ("onnx", "sim"):
        if stale([path], weights_path(model_dir)):
            export(model_dir, batch_size, out_dir, opset=opset, seq_len=seq_len, features_dir=features_dir)
    elif kind in FAST_MODEL_KINDS:
        export_fast_models(model_dir, out_dir, opset, seq_len, features_dir)
    elif kind in ("int8_static", "ov_int8"):
        expect(calibration is not None, UsageError, f"expected a calibration file for the {kind} model, got none")
        if kind == "int8_static":
            export_static_int8(model_dir, calibration.file, out_dir, samples=calibration.samples,
                               seed=calibration.seed, opset=opset, seq_len=seq_len, features_dir=features_dir,
                               min_agreement=calibration.min_agreement)
        elif stale([path], weights_path(model_dir)):
            from tinybert.export.openvino import export_openvino_int8

            export_openvino_int8(model_dir, calibration, out_dir, opset=opset, seq_len=seq_len,
                                 features_dir=features_dir)
    else:
        raise UsageError(f"expected a model kind an exporter writes, got {kind!r}")
    expect(os.path.isfile(path), UsageError, f"{path}: expected the {kind} model after its export, found none")
    return path


def ensure_auto_models(model_dir: str, out_dir: str, features_dir: str | None = None,
                       calibration: Calibration | None = None, opset: int = OPSET, seq_len: int = SEQ_LEN) -> None:
    """The models ORT_MODEL=auto may choose on this CPU class (registry.auto_order), each exported when missing
    or stale, its gate checked again here when its record is missing, stale or from another CPU class."""
    from tinybert.capabilities import current
    from tinybert.registry import auto_order, project_path
    from tinybert.runtimes.needs import unmet_needs
    from tinybert.results import gate_record

    caps = current()
    check, written = None, {}
    order = auto_order(caps.cpu_class).paths
    for name in order:
        path = project_path(name)
        unmet = next(unmet_needs(path, calibration="present",
                                 calibration_file=calibration.file if calibration else None), None)
        if unmet:
            print(f"[INFO] ORT_MODEL=auto: {name} not exported here: {unmet}")
            continue
        group = "fast models" if path.model in FAST_MODEL_KINDS else path.model  # one export writes them all
        if group not in written:
            written[group] = ensure_model(path.model, model_dir, out_dir, features_dir=features_dir,
                                          calibration=calibration, opset=opset, seq_len=seq_len)
        model = model_path(path.model, out_dir)
        state, why = gate_record.status(name, out_dir, model, caps.cpu_class)
        if name != order[-1] and state in ("missing", "stale", "other_cpu"):  # the fallback needs no record
            print(f"[INFO] ORT_MODEL=auto: checking {name} here ({why})")
            if check is None:
                check = fast_verification(model_dir, opset, seq_len, features_dir)
            check_models({name: model}, check, "tight", tolerance=float("inf"), gated=(), remove_on_failure=(),
                         runtime=path.runtime, records={name: name})


__all__ = ["Calibration", "ExportReport", "ensure_auto_models", "ensure_model", "export", "export_fast_models",
           "export_static_int8"]
