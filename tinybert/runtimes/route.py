"""The one route from the settings (BACKEND, ORT_MODEL, REQUESTS, DEVICE), an explicit model or a
benchmark row to an open runtime: infer, perf, predict, classify and the benchmark all take it."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from tinybert.errors import BackendUnavailableError, ModelFileError, UsageError, expect
from tinybert import registry
from tinybert.registry import (CHECKPOINT, CPU, CUDA, GPU_MODEL, ORT_MODEL, RUNTIMES, Backend, RunPath, alternatives,
                               backend, project_path, run_path, runtime)
from tinybert.runtimes.needs import backend_unmet, unmet_needs
from tinybert.settings import default, model_path


# ---------------------------------------------------------------- settings -> model file

@dataclass(frozen=True)
class Request:
    """The settings that decide which model file a step runs."""

    model_dir: str = default("MODEL_DIR")
    ort_model: str = default("ORT_MODEL")
    dynamic_dims: str = default("DYNAMIC_DIMS")
    chip_name: str = ""  # given: the step builds the OM models itself (eval_all.sh with CHIP_NAME)
    ckpt_dir: str = field(default=default("CKPT_DIR"))
    gpu_model: str = field(default=default("GPU_MODEL"))
    device: int = 0  # DEVICE: the GPU a GPU backend is judged and named on


def model_file(path: str | RunPath, model_dir: str = ".", batch_size: int | None = None,
               ckpt_dir: str | None = None) -> str:
    """The model file (or checkpoint folder) a path (a user's by name, or any row's record) runs."""
    kind = (path if isinstance(path, RunPath) else run_path(path)).model
    if kind == CHECKPOINT:
        return ckpt_dir or default("CKPT_DIR")
    return model_path(kind, model_dir, batch_size)


def backend_model(name: str, request: Request, batch_size: int | None) -> str:
    """The model file backend `name` runs for `batch_size` under these settings."""
    entry = next((b for b in registry.BACKENDS if b.name == name), None) or backend(name)
    kind = entry.model
    if kind == ORT_MODEL:
        return model_file(project_path(request.ort_model).name, request.model_dir, batch_size)
    if kind == GPU_MODEL:  # every GPU path runs the checkpoint itself
        return request.ckpt_dir
    if kind == "om":
        kind = "om_gears" if request.dynamic_dims else "om"
    return model_path(kind, request.model_dir, batch_size)


# ---------------------------------------------------------------- ORT_MODEL and GPU_MODEL


@dataclass(frozen=True)
class OrtModelChoice:
    """The path an ORT_MODEL (GPU_MODEL) value names: itself, or for auto the one chosen, and why."""

    requested: str
    path: str
    reason: str = ""  # for auto: why this path (its gate record, or why each faster one was passed over)
    setting: str = "ORT_MODEL"

    def line(self) -> str:
        return f"[INFO] {self.setting}={self.requested} -> {self.path} ({self.reason})" if self.reason else \
            f"[INFO] {self.setting}={self.path}"

    def record(self) -> dict:
        """What outputs record: the value asked for, the path run, and why."""
        record = {"requested": self.requested, "path": self.path, "reason": self.reason}
        return record if self.setting == "ORT_MODEL" else {**record, "setting": self.setting}


def resolve_ort_model(value: str, model_dir: str = ".", having: str | None = None) -> OrtModelChoice:
    """ORT_MODEL's path: a path name as given; auto the first of this CPU class's registry.auto_order whose gate record
    in `model_dir` passed on this CPU class, judged on no less than `having` (gate_record.JUDGED_ON), else the last."""
    if value != registry.AUTO:
        return OrtModelChoice(value, project_path(value).name)
    from tinybert.capabilities import current
    from tinybert.results import gate_record

    cpu_class = current().cpu_class
    order = registry.auto_order(cpu_class).paths
    passed_over = []
    for name in order[:-1]:
        path = project_path(name)
        unmet = next(unmet_needs(path), None)  # the model is exported: its calibration is done
        state, why = ("unmet", unmet) if unmet else \
            gate_record.status(name, model_dir, model_file(name, model_dir), cpu_class, having or gate_record.GENERATED)
        if state == "passed":
            return OrtModelChoice(value, name, f"gate passed on {cpu_class}, {_judged(name, model_dir)}")
        passed_over.append(f"{name}: {why}")
    fallback = order[-1]
    if not passed_over:
        return OrtModelChoice(value, fallback, f"the only path ranked for {cpu_class}")
    return OrtModelChoice(value, fallback, "no faster path's gate passed here: " + "; ".join(passed_over)
                          + " (ORT_MODEL=auto bash test/pth2onnx.sh 1 exports and checks them here)")


def _judged(path: str, model_dir: str) -> str:
    """What a passed gate record was judged on, as the choice line says it."""
    from tinybert.results import gate_record

    record = gate_record.read(path, model_dir) or {}
    judged_on = record.get("judged_on") or "unrecorded inputs"
    return f"judged on the {judged_on}" if judged_on == gate_record.DEV_SET else f"agreement only, on {judged_on}"


def resolve_gpu_model(value: str, model_dir: str = ".", ckpt_dir: str | None = None,
                      device: int | None = None, having: str | None = None) -> OrtModelChoice:
    """GPU_MODEL's path: a path name as given; auto the first of `gpu_auto_candidates` whose gate record in
    `model_dir` passed on this very GPU for these weights (`export.ensure_gpu_gates` writes them), else gpu-fp32."""
    from tinybert.registry import GPU_AUTO_ORDER, gpu_path

    if value != registry.AUTO:
        return OrtModelChoice(value, gpu_path(value).name, setting="GPU_MODEL")
    from tinybert.capabilities import gpu
    from tinybert.model.modeling import weights_path
    from tinybert.results import gate_record

    name = gpu(device or 0).name
    weights = weights_path(ckpt_dir or default("CKPT_DIR"))
    candidates, order_why = gpu_auto_candidates(model_dir, weights, name)
    passed_over = []
    for candidate in candidates:
        unmet = next(unmet_needs(gpu_path(candidate), device=device or 0), None)
        state, why = ("unmet", unmet) if unmet else \
            gate_record.status(candidate, model_dir, weights, name, having or gate_record.GENERATED)
        if state == "passed":
            return OrtModelChoice(value, candidate, f"gate passed on {name}, {_judged(candidate, model_dir)}; order "
                                                    f"{order_why}", setting="GPU_MODEL")
        passed_over.append(f"{candidate}: {why}")
    return OrtModelChoice(value, GPU_AUTO_ORDER[-1], "no faster path's gate passed here: " + "; ".join(passed_over),
                          setting="GPU_MODEL")


def gpu_auto_candidates(model_dir: str, weights_file: str, device_name: str) -> tuple[list[str], str]:
    """The paths GPU_MODEL=auto tries, fastest first, and why in that order: the benchmark's figures on this GPU
    where it measured them (the compiled path only so), else registry.GPU_AUTO_ORDER; the fp32 fallback left out."""
    from tinybert.registry import GPU_AUTO_ORDER
    from tinybert.results.gpu_speed import measured_order

    fallback = GPU_AUTO_ORDER[-1]
    measured, why = measured_order(model_dir, weights_file, device_name)
    if measured:
        ahead = measured[:measured.index(fallback)] if fallback in measured else measured
        return ahead, why
    return list(GPU_AUTO_ORDER[:-1]), f"registry.GPU_AUTO_ORDER ({why})"


@dataclass(frozen=True)
class SettingModel:
    """What an ORT_MODEL value comes to: the choice (auto resolved), its path, and the path's model file."""

    choice: OrtModelChoice
    path: registry.RunPath
    model: str


def ort_model_file(value: str, model_dir: str = ".", batch_size: int | None = None,
                   having: str | None = None) -> SettingModel:
    """ORT_MODEL's path and its model file in `model_dir`: the one place the setting becomes a model."""
    choice = resolve_ort_model(value, model_dir, having)
    path = project_path(choice.path)
    return SettingModel(choice, path, model_file(path.name, model_dir, batch_size))


@dataclass(frozen=True)
class RunPlan:
    """What a step runs: a runtime, its model file (a checkpoint folder for PyTorch) and its options."""

    runtime: str
    model: str
    options: dict = field(default_factory=dict)
    path: str | None = None  # the ORT_MODEL value or benchmark row it runs, when a path chose it
    choice: OrtModelChoice | None = None  # how the settings' ORT_MODEL came to name that path

    def describe(self) -> str:
        gpu = runtime(self.runtime).device == CUDA
        where = f" on {'GPU' if gpu else 'NPU'} {self.options['device']}" if "device" in self.options else ""
        chosen = f" ({self.choice.setting if self.choice else 'ORT_MODEL'}={self.path})" if self.path else ""
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
        if entry.requests and path.role.takes_requests:
            options["requests"] = default("REQUESTS") if requests is None else requests
        if entry.device != CPU and device is not None:
            options["device"] = device
        options.update(path.options)
        return options
    if requests is not None:
        takers = [r.name for r in RUNTIMES if r.requests]
        expect(entry.requests, UsageError, f"--requests {requests}: expected --runtime {alternatives(takers)} "
                                           f"(several calls in flight), got {runtime_name}")
        options["requests"] = requests
    if device is not None:
        takers = [r.name for r in RUNTIMES if r.device != CPU]
        expect(entry.device != CPU, UsageError, f"--device {device}: expected --runtime {alternatives(takers)} (an NPU or "
                                         f"GPU), got --runtime {runtime_name}")
        expect(device >= 0, UsageError, f"--device: expected a non-negative NPU or GPU id, got {device}")
        options["device"] = device
    return options


def plan_path(path: str | RunPath, model_dir: str = ".", *, batch_size: int | None = None, ckpt_dir: str | None = None,
              threads: int | None = None, requests: int | str | None = None, device: int | None = None) -> RunPlan:
    """A path (an ORT_MODEL or GPU_MODEL value, or a benchmark row's record) on its runtime, with its model file and
    options."""
    entry = path if isinstance(path, RunPath) else run_path(path)
    return RunPlan(entry.runtime, model_file(entry, model_dir, batch_size, ckpt_dir),
                   _options(entry.runtime, entry, threads, requests, device), entry.name)


def open_path(path: str | RunPath, model_dir: str = ".", threads: int | None = None, requests: int | str | None = None,
              batch_size: int | None = None, ckpt_dir: str | None = None, device: int | None = None):
    """`plan_path`, opened: how classify and the benchmark open a path."""
    return plan_path(path, model_dir, batch_size=batch_size, ckpt_dir=ckpt_dir, threads=threads,
                     requests=requests, device=device).open()


def plan_model(runtime_name: str, model: str, *, threads: int | None = None, requests: int | str | None = None,
               device: int | None = None) -> RunPlan:
    """An explicit model file on the runtime named; each option given must be one that runtime takes."""
    return RunPlan(runtime_name, model, _options(runtime_name, None, threads, requests, device))


def plan_settings(backend_name: str, request: Request, batch_size: int | None, *, threads: int | None = None,
                  requests: int | str | None = None, device: int | None = None, having: str | None = None) -> RunPlan:
    """What BACKEND runs under the settings test/*.sh pass (registry.BACKENDS says what each runs): ORT_MODEL's path,
    GPU_MODEL's on GPU DEVICE, or its own model kind on its runtime (cann on NPU DEVICE); ais_bench runs itself."""
    entry = backend(backend_name)
    expect(not entry.foreign, UsageError,
           f"expected a backend other than {backend_name}: the OM models run with {backend_name} itself "
           "(test/ais_inference.sh, test/perf.sh); infer runs gear models with --dynamic_dims")
    if entry.model == GPU_MODEL:
        return plan_gpu(request, threads=threads, device=device, having=having)
    chosen = ort_model_file(request.ort_model, request.model_dir, batch_size, having) \
        if entry.model == ORT_MODEL else None
    model = chosen.model if chosen else backend_model(backend_name, request, batch_size)
    what = f"ORT_MODEL={chosen.path.name}" if chosen else f"BACKEND={backend_name}"
    expect(os.path.isfile(model), ModelFileError, f"{model}: expected the ONNX model for {what}, found no such file "
                                                  f"(run test/pth2onnx.sh {batch_size or '<batch_size>'})")
    if chosen is None:
        return plan_model(entry.runtime, model, threads=threads, device=device)
    path = chosen.path
    return RunPlan(path.runtime, model, _options(path.runtime, path, threads, requests), path.name, chosen.choice)


def plan_gpu(request: Request, *, threads: int | None = None, device: int | None = None,
             having: str | None = None) -> RunPlan:
    """GPU_MODEL's path on CUDA device DEVICE, running the checkpoint (CKPT_DIR) itself."""
    choice = resolve_gpu_model(request.gpu_model, request.model_dir, request.ckpt_dir, device, having)
    path = registry.gpu_path(choice.path)
    expect(os.path.isdir(request.ckpt_dir), ModelFileError,
           f"{request.ckpt_dir}: expected the TinyBERT checkpoint folder (CKPT_DIR) for BACKEND=gpu, found no such "
           "folder")
    return RunPlan(path.runtime, request.ckpt_dir, _options(path.runtime, path, threads, device=device or 0),
                   path.name, choice)


def _missing_models(entry: Backend, request: Request, batch_sizes) -> list[tuple[int, str]]:
    if entry.missing_model is None or (entry.builds_with_chip and request.chip_name):
        return []
    paths = [(bs, backend_model(entry.name, request, bs)) for bs in batch_sizes]
    return [(bs, path) for bs, path in paths if not os.path.exists(path)]


def _found(entry: Backend, device: int = 0) -> list[str]:
    """What a chosen backend found here, where the machine decides it (DEVICE's GPU by name)."""
    from tinybert.capabilities import gpu

    return [f"{entry.name}: CUDA device {device} is {gpu(device).name}"] if "torch_cuda" in entry.needs else []


def explain_backend(requested: str, batch_sizes, request: Request = Request(), among=None) -> tuple[str, str]:
    """BACKEND and why: `requested`, checked, or for auto the first of `registry.BACKENDS` (of `among`, what the step
    can run at all) that auto may pick, can run here and has (or will build) its models."""
    batch_sizes = list(batch_sizes)
    if among is not None and requested != "auto" and requested not in among:
        raise UsageError(f"expected BACKEND {alternatives(['auto', *among])} for this step, got {requested!r}")
    if requested == "auto":
        passed_over = []
        for entry in registry.BACKENDS:
            if not entry.auto or (among is not None and entry.name not in among):
                continue
            why = backend_unmet(entry, request.device)
            missing = [] if why else _missing_models(entry, request, batch_sizes)
            if not why and not missing:
                return entry.name, "; ".join(passed_over + _found(entry, request.device)) or "the first backend auto tries"
            passed_over.append(f"{entry.name}: {why or 'no model ' + missing[0][1]}")
        raise BackendUnavailableError(f"expected a usable backend among "
                                      f"{alternatives([b.name for b in registry.BACKENDS if b.auto])}, found none "
                                      f"({'; '.join(passed_over)})")
    entry = backend(requested)
    why = backend_unmet(entry, request.device)
    if why:
        raise BackendUnavailableError(entry.not_installed.format(python=sys.executable, why=why))
    missing = _missing_models(entry, request, batch_sizes)
    if missing:
        bs, path = missing[0]
        raise ModelFileError(entry.missing_model.format(path=path, bs=bs))
    return entry.name, "asked for"


def choose_backend(requested: str, batch_sizes, request: Request = Request()) -> str:
    """`explain_backend`'s choice alone."""
    return explain_backend(requested, batch_sizes, request)[0]

