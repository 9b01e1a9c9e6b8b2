"""TinyBERT SST-2 offline inference: features, export, backends, ais_bench-style results, metrics.

Every entry script and test imports from here; heavy dependencies (torch, onnx, onnxruntime)
are imported inside the functions that need them so that `--help` and the data steps stay fast.
"""

INPUT_NAMES = ("input_ids", "segment_ids", "input_mask")
OUTPUT_NAME = "output"
NUM_LABELS = 2

__version__ = "1.0.0"
