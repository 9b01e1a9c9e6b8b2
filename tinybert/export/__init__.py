"""Checkpoint -> model files: each model kind's exporter (model_kinds.py names it) writes its kind, checked against
PyTorch eager by `checking.check_models` and removed when it fails. The prepare step is their one caller."""

from __future__ import annotations

import os

from tinybert.errors import ModelFileError, expect
from tinybert.export.checking import Calibration, ExportJob
from tinybert.export.static import ExportReport, export
from tinybert.export.fast import export_fast_models
from tinybert.export.calibrated import export_static_int8


def ensure_model(kind: str, job: ExportJob) -> str:
    """The model file of `kind` in `job.out_dir`, written first by its kind's exporter when missing or older than
    the weights; the checkpoint folder itself for the paths that run it."""
    from tinybert.model.modeling import weights_path
    from tinybert.model_kinds import kind as model_kind, model_path, resolve
    from tinybert.registry import CHECKPOINT

    if kind == CHECKPOINT:
        return job.ckpt_dir
    entry = model_kind(kind)
    path = model_path(kind, job.out_dir, job.batch_size)
    weights = weights_path(job.ckpt_dir)
    if not os.path.isfile(weights):
        expect(os.path.isfile(path), ModelFileError,
               f"{path}: expected the {kind} model ({entry.title}), found no such file, nor the checkpoint {weights} "
               f"to export it from (set CKPT_DIR, or run test/pth2onnx.sh {job.batch_size or 1} first)")
        return path
    expect(entry.exporter is not None or os.path.isfile(path), ModelFileError,
           f"{path}: expected the {kind} model ({entry.title}), found no such file; another tool builds it")
    if entry.exporter is not None:
        resolve(entry.exporter)(job)
    expect(os.path.isfile(path), ModelFileError, f"{path}: expected the {kind} model after its export, found none")
    return path


__all__ = ["Calibration", "ExportJob", "ExportReport", "ensure_model", "export", "export_fast_models",
           "export_static_int8"]
