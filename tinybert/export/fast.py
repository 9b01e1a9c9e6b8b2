"""The batch-independent models: the dynamic export (plain and simplified, for ATC gear models) and the CPU
paths' fp32 and dynamic int8 models, with the last encoder layer computed at [CLS] only."""

from __future__ import annotations

import os

from tinybert.errors import ExportError
from tinybert.fileio import os_errors_as
from tinybert.model_kinds import group
from tinybert.settings import EXPORT_TOLERANCE, OPSET, SEQ_LEN, model_path
from tinybert.export.checking import ExportJob, check_models, fast_verification, stale, write_model
from tinybert.export.graphs import export_torchscript, quantize_int8, simplify

FP32_KINDS = ("dynamic", "sim_dynamic", "fast")  # held to the tolerance; int8's gate is recorded, not enforced
RECORDED = {"fast": "fast", "int8": "int8"}  # model kind -> the ORT_MODEL path whose gate record it gets


def export_fast_models(model_dir: str, out_dir: str = ".", opset: int = OPSET, seq_len: int = SEQ_LEN,
                       features_dir: str | None = None, tolerance: float = EXPORT_TOLERANCE,
                       force: bool = False) -> dict:
    """Write the dynamic, fast and int8 models unless all are newer than the weights (or `force`); the fast model
    stays unfused (docs/measurements/fused-attention.md). Removes them all when an fp32 model leaves `tolerance`."""
    from tinybert.model.modeling import cls_only_last_layer, weights_path

    paths = {kind.name: model_path(kind.name, out_dir) for kind in group("fast")}
    if not force and not stale(paths.values(), weights_path(model_dir)):
        print(f"[INFO] {', '.join(map(os.path.basename, paths.values()))} in {out_dir} are newer than the weights; "
              "not exported again")
        return {"paths": paths}
    check = fast_verification(model_dir, opset, seq_len, features_dir)
    with os_errors_as(ExportError, f"write ONNX files to {out_dir}"):
        os.makedirs(out_dir, exist_ok=True)
        example = tuple(a[:2, :16] for a in check.arrays)  # any shape: both axes are exported as dynamic
        model = check.torch_backend.model
        write_model(paths["dynamic"], lambda tmp: export_torchscript(model, example, tmp, opset, dynamic=True),
                    f"exported {paths['dynamic']} (opset {opset}, inputs int64 [batch, sequence])")
        write_model(paths["sim_dynamic"], lambda tmp: simplify(paths["dynamic"], tmp),
                    f"simplified -> {paths['sim_dynamic']} (for ATC gear models)")
        with cls_only_last_layer(model) as pruned:
            write_model(paths["fast"], lambda tmp: export_torchscript(pruned, example, tmp, opset, dynamic=True),
                        f"exported {paths['fast']} (last layer at [CLS] only, for the CPU paths)")
        write_model(paths["int8"], lambda tmp: quantize_int8(paths["fast"], tmp),
                    f"dynamic int8 quantization -> {paths['int8']}")
    report = check_models(paths, check, "tight", tolerance, gated=FP32_KINDS, remove_on_failure=paths.values(),
                          records=RECORDED)
    return {"paths": paths, **report}


def write_fast(job: ExportJob) -> None:
    """The fast group's exporter (dynamic, sim_dynamic, fast, int8): all of them, unless all are newer than the weights."""
    export_fast_models(job.ckpt_dir, job.out_dir, job.opset, job.seq_len, job.features_dir)
