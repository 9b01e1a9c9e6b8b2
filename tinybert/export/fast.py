"""The batch-independent models: the dynamic export (plain and simplified, for ATC gear models) and
the CPU paths' models, exported with the last encoder layer computed at [CLS] only: fp32 and
dynamic int8."""

from __future__ import annotations

import os

from ..errors import ExportError
from ..features import MANIFEST_NAME
from ..fileio import os_errors_as
from ..runner import model_logits
from ..settings import EXPORT_TOLERANCE, FAST_MODEL_KINDS, FAST_VERIFY_SAMPLES, OPSET, SEQ_LEN, model_path
from .checking import check_models, load_checked_model, verification_inputs, write_model
from .graphs import export_torchscript, quantize_int8, simplify

VERIFY_BATCH = 32
FP32_KINDS = ("dynamic", "sim_dynamic", "fast")  # held to the tolerance; int8 is gated by the benchmark


def export_fast_models(model_dir: str, out_dir: str = ".", opset: int = OPSET, seq_len: int = SEQ_LEN,
                       features_dir: str | None = None, tolerance: float = EXPORT_TOLERANCE) -> dict:
    """Write the dynamic (plain and simplified), fast and int8 models; fail, removing them all,
    when an fp32 model's logits leave `tolerance`.

    The fast model is not the dynamic one fused: measured side by side, ONNX Runtime's own graph
    optimisations on the plain graph beat its fused Attention kernel at batch sizes >= 8 and tied at
    1, and computing the last layer at [CLS] only (`cls_only_last_layer`) saves a fifth of the FLOPs."""
    from ..modeling import cls_only_last_layer

    torch_backend = load_checked_model(model_dir, opset, seq_len)
    config = torch_backend.model.config
    count = FAST_VERIFY_SAMPLES
    if features_dir and os.path.isfile(os.path.join(features_dir, MANIFEST_NAME)):
        from ..features import read_manifest

        count = min(count, read_manifest(features_dir)["num_samples"])
    arrays, description = verification_inputs(features_dir, count, seq_len, config.vocab_size)
    paths = {kind: model_path(kind, out_dir) for kind in FAST_MODEL_KINDS}
    with os_errors_as(ExportError, f"write ONNX files to {out_dir}"):
        os.makedirs(out_dir, exist_ok=True)
        example = tuple(a[:2, :16] for a in arrays)  # any shape: both axes are exported as dynamic
        write_model(paths["dynamic"], lambda tmp: export_torchscript(torch_backend.model, example, tmp, opset, dynamic=True),
                    f"exported {paths['dynamic']} (opset {opset}, inputs int64 [batch, sequence])")
        write_model(paths["sim_dynamic"], lambda tmp: simplify(paths["dynamic"], tmp),
                    f"simplified -> {paths['sim_dynamic']} (for ATC gear models)")
        with cls_only_last_layer(torch_backend.model) as pruned:
            write_model(paths["fast"], lambda tmp: export_torchscript(pruned, example, tmp, opset, dynamic=True),
                        f"exported {paths['fast']} (last layer at [CLS] only, for the CPU paths)")
        write_model(paths["int8"], lambda tmp: quantize_int8(paths["fast"], tmp),
                    f"dynamic int8 quantization -> {paths['int8']}")
    reference = model_logits(torch_backend, arrays, VERIFY_BATCH)
    report = check_models(paths, arrays, reference, description, VERIFY_BATCH, "tight", tolerance,
                          gated=FP32_KINDS, remove_on_failure=paths.values())
    return {"paths": paths, **report}
