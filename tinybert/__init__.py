"""TinyBERT SST-2 offline inference: features, export, backends, ais_bench-style results, metrics.
Heavy dependencies (torch, onnx, onnxruntime) are imported where used, so `--help` and data steps stay fast."""

INPUT_NAMES = ("input_ids", "segment_ids", "input_mask")
OUTPUT_NAME = "output"
NUM_LABELS = 2
LABEL_NAMES = ("negative", "positive")  # SST-2's classes, by index

__version__ = "1.0.0"
__all__ = ["Classification", "Classifier", "INPUT_NAMES", "LABEL_NAMES", "NUM_LABELS", "OUTPUT_NAME"]


def __getattr__(name: str):
    """The Python API (tinybert.api), imported only when asked for: the steps below it, which read this module's
    constants, never load it (so no layer reaches up to it through here)."""
    if name in ("Classifier", "Classification"):
        import importlib

        return getattr(importlib.import_module("tinybert.api"), name)
    raise AttributeError(f"module 'tinybert' has no attribute {name!r}")
