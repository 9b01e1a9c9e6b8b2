"""TinyBERT SST-2 offline inference: features, export, backends, ais_bench-style results, metrics.
Heavy dependencies (torch, onnx, onnxruntime) are imported where used, so `--help` and data steps stay fast."""

INPUT_NAMES = ("input_ids", "segment_ids", "input_mask")
OUTPUT_NAME = "output"
NUM_LABELS = 2

__version__ = "1.0.0"
