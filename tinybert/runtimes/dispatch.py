"""Which runtime, model file and options a step runs, one rule for infer, perf and predict: `--model` with a
runtime name, or a BACKEND value and the settings (ORT_MODEL's path; REQUESTS, DEVICE where taken)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tinybert.errors import ModelFileError, UsageError, expect
from tinybert.registry import BACKENDS, RUNTIMES, Request, alternatives, backend_model, project_path, runtime


@dataclass(frozen=True)
class RunPlan:
    runtime: str  # a registry.RUNTIMES name
    model: str  # the model file (a checkpoint folder for PyTorch)
    options: dict = field(default_factory=dict)  # keyword options of the runtime's class
    path: str | None = None  # the CPU path (ORT_MODEL value) it runs, when chosen by the settings

    def describe(self) -> str:
        """One line for the log: what runs which model."""
        where = f" on NPU {self.options['device']}" if "device" in self.options else ""
        chosen = f" (ORT_MODEL={self.path})" if self.path else ""
        return f"runtime: {self.runtime}{where}, model {self.model}{chosen}"


def backend_choices() -> list[str]:
    """What `--backend` accepts: the BACKEND values and the runtimes."""
    names = [b.name for b in BACKENDS if b.choosable] + [r.name for r in RUNTIMES]
    return sorted(set(names))


def resolve(backend: str, model: str | None, request: Request, batch_size: int | None, threads: int | None = None,
            requests: int | str | None = None, device: int | None = None) -> RunPlan:
    if model is not None:
        return _explicit(backend, model, threads, requests, device)
    expect(backend != "ais_bench", UsageError,
           "expected a backend other than ais_bench: the OM models run with ais_bench itself "
           "(test/ais_inference.sh, test/perf.sh); infer runs gear models with --dynamic_dims")
    if backend not in ("onnxruntime", "cann"):
        raise UsageError(f"expected --model with --backend {backend} (settings choose a model only for BACKEND "
                         f"{alternatives(['onnxruntime', 'cann'])})")
    model = backend_model(backend, request, batch_size)
    what = f"ORT_MODEL={request.ort_model}" if backend == "onnxruntime" else "BACKEND=cann"
    expect(os.path.isfile(model), ModelFileError, f"{model}: expected the ONNX model for {what}, found no such file "
                                                  f"(run test/pth2onnx.sh {batch_size or '<batch_size>'})")
    if backend == "cann":
        return RunPlan("cann", model, {"threads": threads, **({"device": device} if device is not None else {})})
    path = project_path(request.ort_model)
    takes_requests = runtime(path.runtime).requests and requests is not None
    return RunPlan(path.runtime, model, {"threads": threads, **({"requests": requests} if takes_requests else {})},
                   path.name)


def _explicit(name: str, model: str, threads, requests, device) -> RunPlan:
    entry = runtime(name)
    options = {"threads": threads}
    if requests is not None:
        takers = [r.name for r in RUNTIMES if r.requests]
        expect(entry.requests, UsageError, f"--requests {requests}: expected --backend {alternatives(takers)} "
                                           f"(several calls in flight), got {name}")
        options["requests"] = requests
    if device is not None:
        takers = [r.name for r in RUNTIMES if r.device]
        expect(entry.device, UsageError, f"--device {device}: expected --backend {alternatives(takers)} (the NPU), "
                                         f"got --backend {name}")
        expect(device >= 0, UsageError, f"--device: expected a non-negative NPU id, got {device}")
        options["device"] = device
    return RunPlan(name, model, options)
