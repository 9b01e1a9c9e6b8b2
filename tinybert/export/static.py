"""The model card's static export for one batch size: TinyBERT_bs{bs}.onnx and its simplified twin."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tinybert import INPUT_NAMES, OUTPUT_NAME
from tinybert.errors import ExportError, UsageError, expect
from tinybert.fileio import os_errors_as
from tinybert.runtimes.runner import CARD_BATCHES
from tinybert.settings import EXPORT_TOLERANCE, OPSET, SEQ_LEN, VERIFY_SAMPLES, model_path
from tinybert.export.checking import ExportJob, check_models, stale, verification, write_model
from tinybert.export.graphs import export_torchscript, simplify


@dataclass
class ExportReport:
    onnx_path: str
    simplified_path: str
    max_abs_diff: dict  # model kind ("onnx", "sim") -> max |logits_onnxruntime - logits_pytorch|
    num_checked: int


def export(model_dir: str, batch_size: int, out_dir: str = ".", opset: int = OPSET, seq_len: int = SEQ_LEN,
           features_dir: str | None = None, tolerance: float = EXPORT_TOLERANCE) -> ExportReport:
    """Write TinyBERT_bs{bs}.onnx and TinyBERT_sim_bs{bs}.onnx and check both against PyTorch."""
    expect(batch_size > 0, UsageError, f"expected a positive batch size, got {batch_size}")
    count = batch_size * max(1, VERIFY_SAMPLES // batch_size)  # whole batches of the static model
    check = verification(model_dir, opset, seq_len, features_dir, count=count, batch_size=batch_size)
    paths = {kind: model_path(kind, out_dir, batch_size) for kind in ("onnx", "sim")}
    model = check.torch_backend.model
    with os_errors_as(ExportError, f"write ONNX files to {out_dir}"):
        os.makedirs(out_dir, exist_ok=True)
        example = tuple(a[:batch_size] for a in check.arrays)
        write_model(paths["onnx"], lambda tmp: export_torchscript(model, example, tmp, opset, dynamic=False),
                    f"exported {paths['onnx']} (opset {opset}, inputs {', '.join(INPUT_NAMES)} int64 "
                    f"[{batch_size}, {seq_len}], output {OUTPUT_NAME} float32 [{batch_size}, 2])")
        write_model(paths["sim"], lambda tmp: simplify(paths["onnx"], tmp), f"simplified -> {paths['sim']}")
    report = check_models(paths, check, CARD_BATCHES, tolerance, gated=paths, remove_on_failure=paths.values())
    return ExportReport(paths["onnx"], paths["sim"], report["max_abs_diff"], len(check.reference))


def write_static(job: ExportJob) -> None:
    """The static pair's exporter (model kinds onnx and sim): written when either is missing or older than the weights."""
    from tinybert.model.modeling import weights_path

    paths = [model_path(kind, job.out_dir, job.batch_size) for kind in ("onnx", "sim")]
    if stale(paths, weights_path(job.ckpt_dir)):
        export(job.ckpt_dir, job.batch_size, job.out_dir, opset=job.opset, seq_len=job.seq_len,
               features_dir=job.features_dir)
