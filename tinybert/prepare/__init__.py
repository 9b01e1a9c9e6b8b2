"""Settings -> a ready model, one way for every caller (the steps, classify, the checks, the benchmark, the API): the
model exported when missing or stale, auto's gates checked on the inputs at hand, the plan with its choice and why."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from tinybert.errors import UsageError, expect
from tinybert.export import Calibration, ExportJob, ensure_model
from tinybert.prepare import gates
from tinybert.registry import AUTO, GPU_MODEL, ORT_MODEL, RunPath
from tinybert.runtimes.route import Request, RunPlan, explain_backend, plan_model, plan_path, plan_settings
from tinybert.settings import OPSET, SEQ_LEN, default

__all__ = ["Calibration", "ModelRequest", "Ready", "prepare"]


@dataclass(frozen=True)
class ModelRequest:
    """What decides the model a caller runs: the settings test/*.sh pass (defaults from the settings table), or an
    explicit `model` file on `runtime`, or a `path` record (a benchmark row)."""

    backend: str = "onnxruntime"  # BACKEND; auto: the first the caller can run (`among`) that runs here
    ort_model: str = default("ORT_MODEL")
    gpu_model: str = default("GPU_MODEL")
    model_dir: str = default("MODEL_DIR")  # where the models and their gate records are
    ckpt_dir: str = default("CKPT_DIR")  # the checkpoint they are exported from (the GPU paths run it)
    batch_size: int | None = None  # for the card's per-batch-size models
    dynamic_dims: str = ""
    features_dir: str | None = None  # the features gates are judged on: labelled ones prove the most
    calibration: Calibration | None = None  # CALIB_FILE, for the calibrated int8 models
    device: int | None = None
    threads: int | None = None
    requests: int | str | None = None
    seq_len: int = SEQ_LEN
    opset: int = OPSET
    model: str | None = None  # an explicit model file (or checkpoint folder) ...
    runtime: str | None = None  # ... on this runtime; nothing is exported or gated for it
    path: RunPath | None = None  # a path's record as the benchmark runs it

    def export_job(self) -> ExportJob:
        return ExportJob(ckpt_dir=self.ckpt_dir, out_dir=self.model_dir, batch_size=self.batch_size,
                         features_dir=self.features_dir, calibration=self.calibration, opset=self.opset,
                         seq_len=self.seq_len)


@dataclass(frozen=True)
class Ready:
    """A prepared model: what runs (the plan), on which backend, and the lines that say what was chosen and why."""

    plan: RunPlan
    backend: str
    lines: tuple[str, ...] = field(default=())
    gates: dict = field(default_factory=dict)  # for auto: each candidate path's gate state here ("passed", ...)

    @property
    def model(self) -> str:
        return self.plan.model

    @property
    def runtime(self) -> str:
        return self.plan.runtime

    @property
    def choice(self):
        return self.plan.choice

    def choice_lines(self) -> tuple[str, ...]:
        """The line saying which path auto chose and why (none for a path named as it is)."""
        return (self.choice.line(),) if self.choice is not None and self.choice.reason else ()

    def open(self, **extra):
        """The runtime, open (its package imported now)."""
        return self.plan.open(**extra)


def prepare(request: ModelRequest, *, among: tuple[str, ...] | None = None, quiet: bool = False, out=None) -> Ready:
    """The ready plan of `request`: BACKEND chosen (auto: `among` those the caller runs), the model exported when
    missing or stale, for auto each candidate's too and its gate checked where its record cannot be trusted."""
    from tinybert.export.checking import inputs_at_hand
    from tinybert.registry import backend as backend_entry

    r = request
    if r.model is not None:
        expect(r.path is None and r.backend in ("onnxruntime", None), UsageError,
               f"expected --runtime with --model (--backend picks a model from the settings), got --backend {r.backend}")
        return _said(Ready(plan_model(r.runtime or "onnxruntime", r.model, threads=r.threads, requests=r.requests,
                                      device=r.device), backend=""), quiet, out)
    expect(r.runtime is None, UsageError, f"expected --model with --runtime {r.runtime} (without --model, "
                                          "--backend and the settings pick the runtime)")
    job = r.export_job()
    if r.path is not None:
        ensure_model(r.path.model, job)
        return Ready(plan_path(r.path, r.model_dir, batch_size=r.batch_size, ckpt_dir=r.ckpt_dir, threads=r.threads,
                               requests=r.requests, device=r.device), backend="")
    settings = Request(r.model_dir, r.ort_model, r.dynamic_dims, ckpt_dir=r.ckpt_dir, gpu_model=r.gpu_model,
                       device=r.device or 0)
    lines, name = [], r.backend
    if name == AUTO:
        name, why = explain_backend(AUTO, [r.batch_size] if r.batch_size else [], settings, among=among)
        lines.append(f"[INFO] BACKEND=auto -> {name} ({why})")
    entry = backend_entry(name)
    expect(among is None or name in among, UsageError, f"expected BACKEND {' or '.join(('auto',) + tuple(among or ()))} "
                                                       f"for this step, got {name!r}")
    states = {}
    if entry.model == GPU_MODEL:
        if r.gpu_model == AUTO:
            states = gates.gpu_candidates(job, r.device)
    elif entry.model == ORT_MODEL:
        if r.ort_model == AUTO:
            states = gates.cpu_candidates(job)
        else:
            _export_path(r.ort_model, job)
    elif not entry.foreign:
        ensure_model(entry.model, job)
    plan = plan_settings(name, settings, r.batch_size, threads=r.threads, requests=r.requests, device=r.device,
                         having=inputs_at_hand(r.features_dir))
    return _said(Ready(plan, name, tuple(lines), states), quiet, out)


def _export_path(ort_model: str, job: ExportJob) -> None:
    """ORT_MODEL's model, exported when missing or stale (the calibrated ones need CALIB_FILE)."""
    from tinybert.errors import ModelFileError
    from tinybert.registry import project_path
    from tinybert.runtimes.needs import CALIBRATION

    from tinybert.model_kinds import kind, model_path

    path = project_path(ort_model)
    needs_file = CALIBRATION in kind(path.model).needs
    missing = job.calibration is None or not os.path.isfile(job.calibration.file)
    if needs_file and missing and not os.path.isfile(model_path(path.model, job.out_dir, job.batch_size)):
        raise ModelFileError(f"ORT_MODEL={ort_model}: the {path.model} model is calibrated on a training TSV: set "
                             f"CALIB_FILE to one (got {job.calibration.file if job.calibration else None!r}), or run "
                             f"CALIB_FILE=<train.tsv> ORT_MODEL={ort_model} bash test/pth2onnx.sh 1 first")
    if needs_file and missing:
        return  # exported earlier from a calibration file no longer named: kept as it is
    try:
        ensure_model(path.model, job)
    except ModelFileError as exc:  # name the setting that asked for it
        raise ModelFileError(f"ORT_MODEL={ort_model}: {exc}") from None


def _said(ready: Ready, quiet: bool, out=None) -> Ready:
    """Print what was chosen and why (BACKEND=auto, ORT_MODEL/GPU_MODEL=auto) to `out` (stdout)."""
    if not quiet:
        for line in ready.lines + ready.choice_lines():
            print(line, file=out or sys.stdout)
    return ready
