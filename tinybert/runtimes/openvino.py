"""OpenVINO on the CPU, fp32 or native bf16: the runner's `requests` threads each with its own infer request,
or (the benchmark's peer rows) OpenVINO's documented AsyncInferQueue through `run_overlapped`."""

from __future__ import annotations

import os
import threading

import numpy as np

from tinybert import INPUT_NAMES
from tinybert.capabilities import current, require
from tinybert.errors import BackendUnavailableError, ModelFileError, expect
from tinybert.machine import physical_cores
from tinybert.runtimes.interface import RuntimeBase
from tinybert.runtimes.runner import resolve_requests

PRECISIONS = {"f32": "f32", "bf16": "bf16"}


def compile_config(hint: str, precision: str, threads: int, requests: int) -> dict:
    """The CPU plugin's config: `hint` (LATENCY or THROUGHPUT), `precision` (a PRECISIONS key) on `threads`
    threads in all, and one stream per request when the runner keeps several in flight."""
    config = {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": PRECISIONS[precision],
              "INFERENCE_NUM_THREADS": threads}
    if requests > 1:
        config["NUM_STREAMS"] = requests  # explicit streams take precedence over the hint
    return config


class OpenVinoRuntime(RuntimeBase):
    name = "openvino"
    batch_size = None
    seq_len = None
    threads: int
    requests: int
    requests_in_flight: int  # the infer requests OpenVINO suggests: run_overlapped's queue

    def __init__(self, model_path: str, threads: int | None = None, precision: str = "f32", hint: str = "LATENCY",
                 requests: int | str | None = 1):
        expect(os.path.isfile(model_path), ModelFileError,
               f"{model_path}: expected an ONNX or OpenVINO IR model (run test/pth2onnx.sh first), found no such file")
        ov = require("openvino", f"backend {self.name!r}")
        if precision == "bf16" and not current().native_bf16:
            raise BackendUnavailableError(
                "bf16: expected a CPU with native bf16 compute (avx512_bf16 or amx_bf16 in /proc/cpuinfo), got "
                f"{current().cpu_class} on this CPU; use ORT_MODEL=fast (fp32) or ORT_MODEL=int8_static")
        self.threads = threads or physical_cores()
        self.precision, self.hint = precision, hint
        self.requests = resolve_requests(requests, self.threads)
        config = compile_config(hint, precision, self.threads, self.requests)
        try:
            self.compiled = ov.Core().compile_model(model_path, "CPU", config)
        except RuntimeError as exc:
            raise ModelFileError(f"{model_path}: OpenVINO cannot load it ({str(exc).splitlines()[0]})") from None
        names = tuple(i.get_any_name() for i in self.compiled.inputs)
        expect(names == INPUT_NAMES, ModelFileError,
               f"{model_path}: expected inputs {', '.join(INPUT_NAMES)}, got {', '.join(names)}")
        self._local = threading.local()  # an infer request serves one call at a time: one per thread
        self.requests_in_flight = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._async_queue = None  # run_overlapped's AsyncInferQueue, made once and kept
        self.model_path = model_path

    def run(self, input_ids: np.ndarray, segment_ids: np.ndarray, input_mask: np.ndarray) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        result = request.infer(dict(zip(INPUT_NAMES, (input_ids, segment_ids, input_mask))))
        return np.array(result[0], dtype=np.float32)

    def run_overlapped(self, inputs, on_output) -> None:
        """Run `inputs` through OpenVINO's AsyncInferQueue as its samples do; `on_output(position, logits)` sees
        each result in order on the calling thread; the callback only copies, and never raises."""
        ov = require("openvino", f"backend {self.name!r}")
        queue = self._async_queue or ov.AsyncInferQueue(self.compiled, max(1, self.requests_in_flight))
        self._async_queue = None  # given back below once the pass completes
        ready: dict[int, np.ndarray] = {}
        queue.set_callback(_copy_logits_into(ready))
        delivered = 0
        try:
            for position, arrays in enumerate(inputs):
                queue.start_async(dict(zip(INPUT_NAMES, arrays)), position)
                delivered = _deliver_in_order(ready, delivered, on_output)
            queue.wait_all()
        except BaseException:
            _settle(queue)
            raise
        _deliver_in_order(ready, delivered, on_output)
        self._async_queue = queue


def _logits_of(request) -> np.ndarray:
    return np.array(request.get_output_tensor(0).data, dtype=np.float32)


def _copy_logits_into(ready: dict):
    """The completion callback; an error is kept, not raised: a raised one stays in the queue with a traceback
    holding the queue, a cycle through C++ that is never freed."""
    def copy_logits(request, position) -> None:
        try:
            ready[position] = _logits_of(request)
        except Exception as exc:  # noqa: BLE001 - raised on the calling thread instead
            ready[position] = exc.with_traceback(None)

    return copy_logits


def _deliver_in_order(ready: dict, delivered: int, on_output) -> int:
    """Hand `on_output` the finished results from position `delivered` on while they are consecutive
    (raising a callback's error in their place); returns the next position to hand out."""
    while delivered in ready:
        logits = ready.pop(delivered)
        if isinstance(logits, Exception):
            raise logits
        on_output(delivered, logits)
        delivered += 1
    return delivered


def _settle(queue) -> None:
    """Wait until no request of a failed pass is in flight; the error being raised is the one to see."""
    try:
        queue.wait_all()
    except Exception:  # noqa: BLE001 - a callback's stored error, secondary to the one propagating
        pass


class OpenVinoBf16Runtime(OpenVinoRuntime):
    name = "openvino-bf16"

    def __init__(self, model_path: str, threads: int | None = None, hint: str = "LATENCY",
                 requests: int | str | None = 1):
        super().__init__(model_path, threads, precision="bf16", hint=hint, requests=requests)


def matmul_chain(model: str, *, precision: str, threads: int, requests: int):
    """The roofline's chain (an ONNX file, or NNCF's int8 IR), compiled as OpenVinoRuntime compiles (LATENCY hint,
    streams = requests), an infer request per calling thread."""
    ov = require("openvino", "the openvino roofline")
    config = compile_config(hint="LATENCY", precision="bf16" if precision == "bf16" else "f32", threads=threads,
                            requests=requests)
    compiled = ov.Core().compile_model(model, "CPU", config)
    local = threading.local()

    def run(x):
        request = getattr(local, "request", None)
        if request is None:
            request = local.request = compiled.create_infer_request()
        return request.infer({"x": x})[0]
    return run
