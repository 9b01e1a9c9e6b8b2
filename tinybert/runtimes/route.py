"""The one route from the settings (BACKEND, ORT_MODEL, REQUESTS, DEVICE), an explicit model or a
benchmark row to an open runtime: infer, perf, predict, classify and the benchmark all take it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace

from tinybert.errors import BackendUnavailableError, ModelFileError, UsageError, expect
from tinybert import registry
from tinybert.registry import (RUNTIMES, Backend, Request, alternatives, backend, backend_model, model_file,
                               project_path, run_path, runtime)
from tinybert.settings import default


@dataclass(frozen=True)
class OrtModelChoice:
    """The path an ORT_MODEL value names: itself, or for auto the one `resolve_ort_model` chose, and why."""

    requested: str
    path: str
    reason: str = ""  # for auto: why this path (its gate record, or why each faster one was passed over)

    def line(self) -> str:
        return f"[INFO] ORT_MODEL={self.requested} -> {self.path} ({self.reason})" if self.reason else \
            f"[INFO] ORT_MODEL={self.path}"

    def record(self) -> dict:
        """What outputs record: the value asked for, the path run, and why."""
        return {"requested": self.requested, "path": self.path, "reason": self.reason}


def resolve_ort_model(value: str, model_dir: str = ".") -> OrtModelChoice:
    """ORT_MODEL's path: a path name as given; auto the first path of this CPU class's registry.auto_order whose
    gate record beside its model in `model_dir` says passed on this CPU class, else the order's last (fast)."""
    if value != registry.AUTO:
        return OrtModelChoice(value, project_path(value).name)
    from tinybert.capabilities import current
    from tinybert.results import gate_record

    cpu_class = current().cpu_class
    order = registry.auto_order(cpu_class).paths
    passed_over = []
    for name in order[:-1]:
        path = project_path(name)
        unmet = next(registry.unmet_needs(path), None)  # the model is exported: its calibration is done
        state, why = ("unmet", unmet) if unmet else \
            gate_record.status(name, model_dir, model_file(name, model_dir), cpu_class)
        if state == "passed":
            return OrtModelChoice(value, name, f"gate passed on {cpu_class} at export")
        passed_over.append(f"{name}: {why}")
    fallback = order[-1]
    if not passed_over:
        return OrtModelChoice(value, fallback, f"the only path ranked for {cpu_class}")
    return OrtModelChoice(value, fallback, "no faster path's gate passed here: " + "; ".join(passed_over)
                          + " (ORT_MODEL=auto bash test/pth2onnx.sh 1 exports and checks them here)")


@dataclass(frozen=True)
class RunPlan:
    """What a step runs: a runtime, its model file (a checkpoint folder for PyTorch) and its options."""

    runtime: str
    model: str
    options: dict = field(default_factory=dict)
    path: str | None = None  # the ORT_MODEL value or benchmark row it runs, when a path chose it
    choice: OrtModelChoice | None = None  # how the settings' ORT_MODEL came to name that path

    def describe(self) -> str:
        where = f" on NPU {self.options['device']}" if "device" in self.options else ""
        chosen = f" (ORT_MODEL={self.path})" if self.path else ""
        return f"runtime: {self.runtime}{where}, model {self.model}{chosen}"

    def open(self, **extra):
        from tinybert import runtimes

        return runtimes.open_runtime(self.runtime, self.model, **{**self.options, **extra})


def _options(runtime_name: str, path=None, threads: int | None = None, requests: int | str | None = None,
             device: int | None = None) -> dict:
    """The one rule for options: a path of the project gets REQUESTS (its default when not given) unless the
    path fixes it; a peer or GPU row keeps its own configuration; an explicit model gets what is asked."""
    entry = runtime(runtime_name)
    options = {"threads": threads}
    if path is not None:
        if entry.requests and path.role not in ("peer", "gpu"):
            options["requests"] = default("REQUESTS") if requests is None else requests
        options.update(path.options)
        return options
    if requests is not None:
        takers = [r.name for r in RUNTIMES if r.requests]
        expect(entry.requests, UsageError, f"--requests {requests}: expected --runtime {alternatives(takers)} "
                                           f"(several calls in flight), got {runtime_name}")
        options["requests"] = requests
    if device is not None:
        takers = [r.name for r in RUNTIMES if r.device]
        expect(entry.device, UsageError, f"--device {device}: expected --runtime {alternatives(takers)} (the NPU), "
                                         f"got --runtime {runtime_name}")
        expect(device >= 0, UsageError, f"--device: expected a non-negative NPU id, got {device}")
        options["device"] = device
    return options


def plan_path(path: str, model_dir: str = ".", *, batch_size: int | None = None, ckpt_dir: str | None = None,
              threads: int | None = None, requests: int | str | None = None) -> RunPlan:
    """A path (an ORT_MODEL value or a benchmark row) on its runtime, with its model file and options."""
    entry = run_path(path)
    return RunPlan(entry.runtime, model_file(path, model_dir, batch_size, ckpt_dir),
                   _options(entry.runtime, entry, threads, requests), entry.name)


def open_path(path: str, model_dir: str = ".", threads: int | None = None, requests: int | str | None = None,
              batch_size: int | None = None, ckpt_dir: str | None = None):
    """`plan_path`, opened: how classify and the benchmark open a path."""
    return plan_path(path, model_dir, batch_size=batch_size, ckpt_dir=ckpt_dir, threads=threads,
                     requests=requests).open()


def plan_model(runtime_name: str, model: str, *, threads: int | None = None, requests: int | str | None = None,
               device: int | None = None) -> RunPlan:
    """An explicit model file on the runtime named; each option given must be one that runtime takes."""
    return RunPlan(runtime_name, model, _options(runtime_name, None, threads, requests, device))


def plan_settings(backend_name: str, request: Request, batch_size: int | None, *, threads: int | None = None,
                  requests: int | str | None = None, device: int | None = None) -> RunPlan:
    """What BACKEND runs under the settings test/*.sh pass: onnxruntime ORT_MODEL's path, cann the
    simplified static model on NPU DEVICE (ais_bench runs its OM models itself)."""
    expect(backend_name != "ais_bench", UsageError,
           "expected a backend other than ais_bench: the OM models run with ais_bench itself "
           "(test/ais_inference.sh, test/perf.sh); infer runs gear models with --dynamic_dims")
    expect(backend_name in ("onnxruntime", "cann"), UsageError,
           f"expected --model with --backend {backend_name} (settings choose a model only for BACKEND "
           f"{alternatives(['onnxruntime', 'cann'])})")
    choice = resolve_ort_model(request.ort_model, request.model_dir) if backend_name == "onnxruntime" else None
    if choice is not None:
        request = replace(request, ort_model=choice.path)
    model = backend_model(backend_name, request, batch_size)
    what = f"ORT_MODEL={request.ort_model}" if backend_name == "onnxruntime" else "BACKEND=cann"
    expect(os.path.isfile(model), ModelFileError, f"{model}: expected the ONNX model for {what}, found no such file "
                                                  f"(run test/pth2onnx.sh {batch_size or '<batch_size>'})")
    if backend_name == "cann":
        return plan_model("cann", model, threads=threads, device=device)
    path = project_path(request.ort_model)
    return RunPlan(path.runtime, model, _options(path.runtime, path, threads, requests), path.name, choice)


def _missing_models(entry: Backend, request: Request, batch_sizes) -> list[tuple[int, str]]:
    if entry.missing_model is None or (entry.builds_with_chip and request.chip_name):
        return []
    paths = [(bs, backend_model(entry.name, request, bs)) for bs in batch_sizes]
    return [(bs, path) for bs, path in paths if not os.path.isfile(path)]


def choose_backend(requested: str, batch_sizes, request: Request = Request()) -> str:
    """BACKEND for the shell steps: `requested`, checked, or for `auto` the first entry of `registry.BACKENDS`
    that auto may pick, is installed here and has (or will build) its models."""
    batch_sizes = list(batch_sizes)
    if requested == "auto":
        for entry in registry.BACKENDS:
            if entry.auto and entry.installed() and not _missing_models(entry, request, batch_sizes):
                return entry.name
        raise BackendUnavailableError(
            f"expected a usable backend among {alternatives([b.name for b in registry.BACKENDS if b.auto])}, found none")
    entry = backend(requested)
    if not entry.installed():
        raise BackendUnavailableError(entry.not_installed.format(python=sys.executable))
    missing = _missing_models(entry, request, batch_sizes)
    if missing:
        bs, path = missing[0]
        raise ModelFileError(entry.missing_model.format(path=path, bs=bs))
    return entry.name

