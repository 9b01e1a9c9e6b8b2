"""Which inference backend the shell steps use, and which model file each backend runs: one rule.

`BACKEND=auto` takes the first entry of `BACKEND_RULES` (in order) that is installed here and has its
models, or will build them; ONNX Runtime, last, always qualifies. An explicitly named backend is
checked the same way and fails saying what is missing. A new backend is one more entry (and its
LOOP default in the settings table). test/common.sh (ais_inference.sh, perf.sh) and test/eval_all.sh
ask through `python -m tinybert backend`; `python -m tinybert paths <backend>` prints the model.

Standard library only at import: the scripts run this for every step.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable

from .errors import BackendUnavailableError, ModelFileError, UsageError
from .settings import CPU_RUNTIMES, ORT_MODELS, default, model_path


@dataclass(frozen=True)
class Request:
    """What the step is about to run: its settings, and what it can build itself."""

    model_dir: str = default("MODEL_DIR")
    ort_model: str = default("ORT_MODEL")
    dynamic_dims: str = default("DYNAMIC_DIMS")
    chip_name: str = ""  # given: the step builds the OM models itself (eval_all.sh with CHIP_NAME)


@dataclass(frozen=True)
class BackendRule:
    name: str
    installed: Callable[[], bool]  # the tool can run here
    not_installed: str  # why not and what to do ({python}: the interpreter); exit 3
    model: Callable[[Request, int], str]  # the model file it runs for a batch size
    # The model must exist before the step starts, unless can_build; {path} and {bs} are filled in.
    # None: the step scripts check the model themselves (they build it first, or name ORT_MODEL).
    missing_model: str | None = None
    can_build: Callable[[Request], bool] = lambda request: False
    auto: bool = True  # BACKEND=auto may choose it


def _importable(module: str) -> Callable[[], bool]:
    from .capabilities import installed

    return lambda: installed(module)


def ort_model(request: Request, batch_size: int | None) -> str:
    """The ONNX model ONNX Runtime runs (ORT_MODEL)."""
    if request.ort_model not in ORT_MODELS:
        raise UsageError(f"expected ORT_MODEL {_alternatives(ORT_MODELS)}, got {request.ort_model!r}")
    return model_path(ORT_MODELS[request.ort_model], request.model_dir, batch_size)


def cpu_runtime(ort_model_name: str) -> str:
    """The backend that runs ORT_MODEL's model for `infer` and `perf`: ONNX Runtime, or OpenVINO for bf16."""
    if ort_model_name not in CPU_RUNTIMES:
        raise UsageError(f"expected ORT_MODEL {_alternatives(CPU_RUNTIMES)}, got {ort_model_name!r}")
    return CPU_RUNTIMES[ort_model_name]


def om_model(request: Request, batch_size: int | None) -> str:
    """The OM model ais_bench runs: the card's static one, or a gear model when DYNAMIC_DIMS is set."""
    return model_path("om_gears" if request.dynamic_dims else "om", request.model_dir, batch_size)


BACKEND_RULES = (
    BackendRule(
        "ais_bench", _importable("ais_bench"),
        "ais_bench is not installed for {python} (it needs an Ascend NPU with CANN; install it from "
        "https://gitee.com/ascend/tools/tree/master/ais-bench_workload/tool/ais_bench). "
        "Without an NPU use BACKEND=onnxruntime.",
        om_model,
        missing_model="{path}: expected the OM model for batch size {bs}, found no such file "
                      "(run test/onnx2om.sh {bs} <chip_name>)",
        can_build=lambda request: bool(request.chip_name)),
    # ONNX Runtime's CANN provider: the simplified static model on the NPU, no ATC. The backend itself
    # checks for the provider (exit 3 with the install hint); auto never picks it.
    BackendRule(
        "cann", _importable("onnxruntime"), "onnxruntime is not installed for {python} (pip install onnxruntime-cann)",
        lambda request, batch_size: model_path("sim", request.model_dir, batch_size),
        missing_model="{path}: expected the simplified ONNX model for BACKEND=cann, found no such file "
                      "(run test/pth2onnx.sh {bs})",
        auto=False),
    BackendRule("onnxruntime", lambda: True, "onnxruntime is not installed for {python} (pip install onnxruntime)",
                ort_model),
)


def _alternatives(names) -> str:
    names = list(names)
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def rule(name: str) -> BackendRule:
    for candidate in BACKEND_RULES:
        if candidate.name == name:
            return candidate
    raise UsageError(f"expected BACKEND {_alternatives(['auto'] + [r.name for r in BACKEND_RULES])}, got {name!r}")


def _missing_models(backend: BackendRule, request: Request, batch_sizes) -> list[tuple[int, str]]:
    if backend.missing_model is None or backend.can_build(request):
        return []
    paths = [(bs, backend.model(request, bs)) for bs in batch_sizes]
    return [(bs, path) for bs, path in paths if not os.path.isfile(path)]


def choose_backend(requested: str, batch_sizes, request: Request = Request()) -> str:
    """The backend to run `batch_sizes` with: `requested`, checked, or the auto rule's choice."""
    batch_sizes = list(batch_sizes)
    if requested == "auto":
        for backend in BACKEND_RULES:
            if backend.auto and backend.installed() and not _missing_models(backend, request, batch_sizes):
                return backend.name
        raise BackendUnavailableError(
            f"expected a usable backend among {_alternatives([r.name for r in BACKEND_RULES])}, found none")
    backend = rule(requested)
    if not backend.installed():
        raise BackendUnavailableError(backend.not_installed.format(python=sys.executable))
    missing = _missing_models(backend, request, batch_sizes)
    if missing:
        bs, path = missing[0]
        raise ModelFileError(backend.missing_model.format(path=path, bs=bs))
    return backend.name


def backend_model(name: str, request: Request, batch_size: int | None) -> str:
    """The model file backend `name` runs for `batch_size` under these settings."""
    return rule(name).model(request, batch_size)
