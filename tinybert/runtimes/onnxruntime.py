"""ONNX Runtime on the CPU (or a GPU provider when asked for and installed), with `requests` calls
in flight at once (REQUESTS)."""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from tinybert import INPUT_NAMES
from tinybert.capabilities import ort_providers
from tinybert.errors import BackendUnavailableError, ModelFileError, expect
from tinybert.machine import physical_cores
from tinybert.runtimes.interface import RuntimeBase
from tinybert.runtimes.runner import resolve_requests


def _fixed_dim(dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def session_options(threads: int, requests: int) -> ort.SessionOptions:
    """One session serves every request in flight (Run is thread-safe); each request computes on its share of
    `threads`, the calling thread included."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads // requests)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class OrtRuntime(RuntimeBase):
    name = "onnxruntime"
    batch_size: int | None  # the model's, read when it opens
    seq_len: int | None
    threads: int
    requests: int

    def __init__(self, model_path: str, threads: int | None = None, providers: list[str] | None = None,
                 requests: int | str | None = "auto"):
        expect(os.path.isfile(model_path), ModelFileError,
               f"{model_path}: expected an ONNX model (run test/pth2onnx.sh first), found no such file")
        providers = providers or ["CPUExecutionProvider"]
        # A provider is a name, or (name, options) as ONNX Runtime accepts.
        available = ort_providers()
        unavailable = [p for p in providers if (p[0] if isinstance(p, tuple) else p) not in available]
        if unavailable:
            raise BackendUnavailableError(f"ONNX Runtime here has no {', '.join(map(str, unavailable))} "
                                          f"(available: {', '.join(available)})")
        self.threads = threads or physical_cores()
        self.requests = resolve_requests(requests, self.threads)
        try:
            self.session = ort.InferenceSession(model_path, session_options(self.threads, self.requests),
                                                providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for invalid files
            raise ModelFileError(f"{model_path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None
        inputs = self.session.get_inputs()
        names = tuple(i.name for i in inputs)
        expect(names == INPUT_NAMES, ModelFileError,
               f"{model_path}: expected inputs {', '.join(INPUT_NAMES)}, got {', '.join(names)}")
        shape = inputs[0].shape
        self.batch_size = _fixed_dim(shape[0])
        self.seq_len = _fixed_dim(shape[1])
        self.output_name = self.session.get_outputs()[0].name
        self.model_path = model_path

    def run(self, input_ids: np.ndarray, segment_ids: np.ndarray, input_mask: np.ndarray) -> np.ndarray:
        feed = dict(zip(INPUT_NAMES, (input_ids, segment_ids, input_mask)))
        return self.session.run([self.output_name], feed)[0]


def matmul_chain(model: str, *, precision: str, threads: int, requests: int):
    """The roofline's chain (an ONNX file, quantized as `precision` says): one session, its threads shared among
    the calls in flight, as OrtRuntime shares them."""
    session = ort.InferenceSession(model, session_options(threads, requests), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": x})[0]
