"""OpenVINO on the CPU: fp32, or bf16 where the CPU computes it natively.

`hint` is OpenVINO's PERFORMANCE_HINT: LATENCY (one stream on all cores) or THROUGHPUT (several
streams). The project's runner calls `run` from `requests` threads at once (REQUESTS), each with its
own infer request, on as many streams; the benchmark's peer rows use OpenVINO's own documented
configuration instead: `run_overlapped`, its optimal number of infer requests started asynchronously.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from .. import INPUT_NAMES
from ..capabilities import current, require
from ..errors import BackendUnavailableError, ModelFileError, expect
from ..machine import physical_cores
from ..runner import resolve_requests

PRECISIONS = {"f32": "f32", "bf16": "bf16"}


class OpenVinoBackend:
    name = "openvino"
    batch_size = None
    seq_len = None

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
        config = {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": PRECISIONS[precision],
                  "INFERENCE_NUM_THREADS": self.threads}
        if self.requests > 1:
            config["NUM_STREAMS"] = self.requests  # explicit streams take precedence over the hint
        try:
            self.compiled = ov.Core().compile_model(model_path, "CPU", config)
        except RuntimeError as exc:
            raise ModelFileError(f"{model_path}: OpenVINO cannot load it ({str(exc).splitlines()[0]})") from None
        names = tuple(i.get_any_name() for i in self.compiled.inputs)
        expect(names == INPUT_NAMES, ModelFileError,
               f"{model_path}: expected inputs {', '.join(INPUT_NAMES)}, got {', '.join(names)}")
        self._local = threading.local()  # an infer request serves one call at a time: one per thread
        self.requests_in_flight = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.model_path = model_path

    def run(self, input_ids: np.ndarray, segment_ids: np.ndarray, input_mask: np.ndarray) -> np.ndarray:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        result = request.infer(dict(zip(INPUT_NAMES, (input_ids, segment_ids, input_mask))))
        return np.array(result[0], dtype=np.float32)

    def run_overlapped(self, inputs, on_output) -> None:
        """Run every (input_ids, segment_ids, input_mask) of `inputs` with OpenVINO's optimal number
        of infer requests in flight, started asynchronously in turn; `on_output(position, logits)`
        sees each result. (No Python completion callback: a callback that needs the GIL while the
        main thread waits to start a request can deadlock.)"""
        requests = [self.compiled.create_infer_request() for _ in range(max(1, self.requests_in_flight))]
        started: list[int | None] = [None] * len(requests)

        def finish(slot):
            requests[slot].wait()
            on_output(started[slot], np.array(requests[slot].get_output_tensor(0).data, dtype=np.float32))

        for position, arrays in enumerate(inputs):
            slot = position % len(requests)
            if started[slot] is not None:
                finish(slot)
            requests[slot].start_async(dict(zip(INPUT_NAMES, arrays)))
            started[slot] = position
        for slot, position in enumerate(started):
            if position is not None:
                finish(slot)


class OpenVinoBf16Backend(OpenVinoBackend):
    name = "openvino-bf16"

    def __init__(self, model_path: str, threads: int | None = None, hint: str = "LATENCY",
                 requests: int | str | None = 1):
        super().__init__(model_path, threads, precision="bf16", hint=hint, requests=requests)
