"""Every default of the pipeline, once, each with the reason it is what it is.

The shell steps under test/ take their defaults from `SETTINGS` (`python -m tinybert settings
--shell`) and ask for model file names (`python -m tinybert paths ...`); the Python steps use the
typed constants below. Nothing else in the project spells a default or a model file name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str  # the environment variable test/*.sh reads
    default: str  # may refer to an earlier setting as {NAME}
    why: str


SETTINGS = (
    Setting("GLUE_DIR", "./glue_dir/SST-2", "the model card's layout: dev.tsv lives in glue_dir/SST-2"),
    Setting("DATA_FILE", "{GLUE_DIR}/dev.tsv", "the card scores the GLUE SST-2 dev set"),
    Setting("CKPT_DIR", "./SST-2_model", "the card's checkpoint folder (config.json, pytorch_model.bin, vocab.txt)"),
    Setting("BIN_DIR", "./bert_bin", "the card's feature folder"),
    Setting("MODEL_DIR", ".", "the card writes .onnx and .om files into the working directory"),
    Setting("RESULT_DIR", "./result", "ais_bench's --output in the card"),
    Setting("SEQ_LEN", "64", "the card's max_seq_length; the longest dev sentence has 55 tokens"),
    Setting("OPSET", "11", "the card's opset: ATC supports it, and exact (erf) GELU needs 9 or later"),
    Setting("BATCH_SIZES", "1 4 8 16 32 64", "the batch sizes of the card's table"),
    Setting("BACKEND", "auto", "ais_bench where it is installed and an OM model exists or can be built, "
                               "else ONNX Runtime: the same steps run on an NPU server and anywhere else"),
    Setting("ORT_MODEL", "fast", "fused fp32 on length-bucketed batches: the logits of PyTorch within 1e-4, "
                                 "several times the card's static model (README, benchmark)"),
    Setting("BUCKET_EDGES", "tight", "padding each length-sorted batch to its own longest sample measured "
                                     "15-23 % faster on ONNX Runtime than 16/32/48/64 gears"),
    Setting("DYNAMIC_DIMS", "", "empty: the card's static OM models; e.g. 16,32,48,64 builds Ascend gear models"),
    Setting("OUTFMT", "TXT", "ais_bench's output format in the card"),
    Setting("PRECISION_MODE", "force_fp16", "ATC's inference default, as in the card"),
    Setting("CANN_SET_ENV", "/usr/local/Ascend/ascend-toolkit/set_env.sh", "where the CANN toolkit installs "
                                                                           "its environment script"),
)

_REFERENCE = re.compile(r"\{([A-Z_]+)\}")


def defaults() -> dict[str, str]:
    """Each setting's default, with references to earlier settings filled in."""
    values: dict[str, str] = {}
    for setting in SETTINGS:
        values[setting.name] = _REFERENCE.sub(lambda m: values[m.group(1)], setting.default)
    return values


def default(name: str) -> str:
    return defaults()[name]


# Typed defaults for the Python steps (the same table).
SEQ_LEN = int(default("SEQ_LEN"))
OPSET = int(default("OPSET"))
BATCH_SIZES = tuple(int(bs) for bs in default("BATCH_SIZES").split())
MIN_OPSET = 11  # ATC's ONNX support starts at 11
# fp32 exports must give the logits of PyTorch eager to this max abs difference (float32 rounding
# over 4 layers stays near 1e-6; a wrong graph is off by far more).
EXPORT_TOLERANCE = 1e-4
VERIFY_SAMPLES = 32  # samples the card's static export is checked on (whole batches of it)
FAST_VERIFY_SAMPLES = 1024  # the fast models are checked on more: they also change batching
# Reduced-precision paths are gated on the dev set, against the fp32 path and PyTorch eager.
MAX_ACCURACY_DROP = 0.3  # points
MIN_AGREEMENT = 0.99

# Model files, by kind; {bs} is the batch size of the card's static models.
MODEL_FILES = {
    "onnx": "TinyBERT_bs{bs}.onnx",  # the card's static export
    "sim": "TinyBERT_sim_bs{bs}.onnx",  # ... simplified: what ATC and ORT_MODEL=static use
    "dynamic": "TinyBERT_dynamic.onnx",  # batch and sequence axes dynamic, standard ops only
    "sim_dynamic": "TinyBERT_sim_dynamic.onnx",  # ... simplified: what ATC turns into gear models
    "fast": "TinyBERT_fast.onnx",  # ONNX Runtime's fusions applied, fp32
    "int8": "TinyBERT_int8.onnx",  # fast, dynamically quantized to int8
    "om": "TinyBERT_bs{bs}.om",  # the card's static OM model
    "om_gears": "TinyBERT_bs{bs}_dyn.om",  # an OM gear model (DYNAMIC_DIMS)
}
FAST_MODEL_KINDS = ("dynamic", "sim_dynamic", "fast", "int8")  # written by `export-fast`, batch-independent
ORT_MODELS = {"fast": "fast", "int8": "int8", "static": "sim"}  # ORT_MODEL -> model file kind


def model_path(kind: str, model_dir: str = ".", batch_size: int | None = None) -> str:
    from .errors import UsageError

    if kind not in MODEL_FILES:
        raise UsageError(f"expected a model kind among {', '.join(MODEL_FILES)}, got {kind!r}")
    name = MODEL_FILES[kind]
    if "{bs}" in name and batch_size is None:
        raise UsageError(f"expected a batch size for the {kind} model {name}, got none")
    return os.path.join(model_dir, name.format(bs=batch_size))
