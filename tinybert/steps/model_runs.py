"""What the model steps (infer, perf, predict) run and how: their options prepared into a ready model (`prepare`: an
explicit model on a runtime, or the settings test/*.sh pass through), then the step itself."""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ModelSettings:
    """A model step's options that pick what runs: `model` on `runtime`, else the settings (None: the step's own)."""

    model: str | None = None
    runtime: str | None = None
    backend: str | None = None
    model_dir: str | None = None
    ort_model: str | None = None
    gpu_model: str | None = None
    ckpt_dir: str | None = None
    dynamic_dims: str = ""
    threads: int | None = None
    requests: str | None = None
    device: int | None = None
    call_tokens: int = 0
    calibration_file: str | None = None
    calibration_samples: int | None = None
    calibration_seed: int | None = None

    @classmethod
    def of(cls, namespace) -> ModelSettings:
        """The fields `namespace` (a step's parsed options) has; the others keep their defaults."""
        return cls(**{f.name: getattr(namespace, f.name) for f in fields(cls) if hasattr(namespace, f.name)})


def request(settings: ModelSettings, batch_size: int | None, features_dir: str | None = None):
    """The prepare step's request of a step's options (None: the step's defaults)."""
    from tinybert.prepare import Calibration, ModelRequest
    from tinybert.settings import CALIB_SAMPLES, CALIB_SEED

    s = settings
    calibration = Calibration(s.calibration_file, s.calibration_samples or CALIB_SAMPLES,
                              CALIB_SEED if s.calibration_seed is None else s.calibration_seed) \
        if s.calibration_file else None
    given = {"model_dir": s.model_dir, "ort_model": s.ort_model, "gpu_model": s.gpu_model, "ckpt_dir": s.ckpt_dir}
    return ModelRequest(backend=s.backend or ("onnxruntime" if s.model is None else None), model=s.model,
                        runtime=s.runtime, dynamic_dims=s.dynamic_dims, batch_size=batch_size,
                        features_dir=features_dir, calibration=calibration, threads=s.threads, requests=s.requests,
                        device=s.device, **{k: v for k, v in given.items() if v is not None})


def plan(settings: ModelSettings, batch_size: int | None, features_dir: str | None = None):
    """The run plan of a step's options, prepared (`prepare`: exported, gated on `features_dir`, chosen)."""
    from tinybert.prepare import prepare

    return prepare(request(settings, batch_size, features_dir)).plan


def call_tokens(run_plan, requested: int) -> int:
    """CALL_TOKENS, except on a path that runs each batch in one call (the GPU paths: a call is a graph replay)."""
    from tinybert.registry import run_path

    return 0 if run_plan.path and run_path(run_plan.path).whole_batches else requested


def device_name(run_plan) -> str | None:
    """The GPU a plan runs on, by name (None off the GPU)."""
    from tinybert.capabilities import gpu
    from tinybert.registry import CUDA, runtime

    return gpu(run_plan.options.get("device") or 0).name if runtime(run_plan.runtime).device == CUDA else None


def print_plan(run_plan) -> None:
    """What runs (the prepare step said which path auto chose and why)."""
    print(f"[INFO] {run_plan.describe()}")


def choice_record(run_plan) -> dict | None:
    return run_plan.choice.record() if run_plan.choice is not None else None


def infer(settings: ModelSettings, inputs: list[str], *, output: str, batch_size: int, outfmt: str,
          output_dirname: str | None, progress: bool, bucket_edges: str) -> None:
    """The infer step: the planned model over the feature folders into a result folder; ais_bench on a gear model
    once per gear (`infer_gears`)."""
    from tinybert.steps.inference import manifest_folder, run_inference

    from tinybert.registry import foreign

    if settings.model is None and foreign(settings.backend or ""):
        return infer_gears(settings, inputs, batch_size=batch_size, output=output, outfmt=outfmt,
                           output_dirname=output_dirname)
    run_plan = plan(settings, batch_size, manifest_folder(inputs))
    print_plan(run_plan)
    run_inference(run_plan.model, inputs, output, batch_size, outfmt=outfmt, runtime=run_plan.runtime,
                  output_dirname=output_dirname, progress=progress, bucket_edges=bucket_edges,
                  call_tokens=call_tokens(run_plan, settings.call_tokens), ort_model=choice_record(run_plan),
                  **run_plan.options)


def infer_gears(settings: ModelSettings, inputs: list[str], *, batch_size: int, output: str, outfmt: str,
                output_dirname: str | None) -> None:
    """ais_bench on a gear model: once per gear, merged into one result folder (`gears.run_gears`)."""
    from tinybert.errors import UsageError, expect
    from tinybert.runtimes.route import Request, backend_model
    from tinybert.steps.gears import run_gears
    from tinybert.steps.inference import manifest_folder

    s = settings
    bin_dir = manifest_folder(inputs)
    expect(bool(s.dynamic_dims) and bin_dir is not None, UsageError,
           "expected --dynamic_dims and the three folders of a preprocessed feature folder for ais_bench gear "
           "models (the static OM model runs with ais_bench itself: test/ais_inference.sh)")
    om = backend_model("ais_bench", Request(s.model_dir, s.ort_model, s.dynamic_dims), batch_size)
    run_gears(om, bin_dir, s.dynamic_dims, batch_size, output, outfmt=outfmt, device=s.device or 0,
              dirname=output_dirname)


def perf(settings: ModelSettings, *, batch_size: int, loop: int | None, warmup: int, seconds: float, repeats: int,
         providers: list[str] | None, bin_dir: str | None, bucket_edges: str, json_out: str | None,
         progress: bool) -> None:
    """The perf step: the planned model timed at `batch_size` (`loop` None: the backend's LOOP)."""
    from tinybert.registry import loop_default
    from tinybert.steps.perf import measure

    loop = loop or loop_default(settings.backend or "onnxruntime")
    run_plan = plan(settings, batch_size, bin_dir)
    options = dict(run_plan.options)
    if providers:
        options["providers"] = providers
    print_plan(run_plan)
    measure(run_plan.model, batch_size, loop, warmup, runtime=run_plan.runtime, json_out=json_out, bin_dir=bin_dir,
            bucket_edges=bucket_edges, call_tokens=call_tokens(run_plan, settings.call_tokens), repeats=repeats,
            min_seconds=seconds, progress=progress, ort_model=choice_record(run_plan),
            device_name=device_name(run_plan), **options)


def predict_plan(*, backend: str, model_dir: str | None, onnx: str | None, ort_model: str, gates_dir: str,
                 gpu_model: str, threads: int | None, requests: str | None, device: int | None, calibration=None):
    """What predict runs, prepared: `onnx` (a file as named, on ORT_MODEL's runtime; a folder: ORT_MODEL's path in
    it), else the checkpoint on BACKEND's device; what preparing says goes to stderr, stdout is the predictions'."""
    import contextlib

    with contextlib.redirect_stdout(sys.stderr):
        return _predict_plan(backend=backend, model_dir=model_dir, onnx=onnx, ort_model=ort_model, gates_dir=gates_dir,
                             gpu_model=gpu_model, threads=threads, requests=requests, device=device,
                             calibration=calibration)


def _predict_plan(*, backend, model_dir, onnx, ort_model, gates_dir, gpu_model, threads, requests, device,
                  calibration):
    import os

    from tinybert.prepare import ModelRequest, prepare
    from tinybert.registry import AUTO, ORT_MODEL, backend as backend_entry, path_backends, project_path
    from tinybert.runtimes.route import Request, explain_backend

    if onnx and os.path.isdir(onnx):
        ready = prepare(ModelRequest(model_dir=onnx, ort_model=ort_model, calibration=calibration, threads=threads,
                                     requests=requests), out=sys.stderr)
        print(f"[INFO] ORT_MODEL={ready.plan.path}: {ready.model} on {ready.runtime}", file=sys.stderr)
        return ready.plan
    if onnx:
        if ort_model == AUTO:
            print(f"[INFO] ORT_MODEL=auto: {onnx} is one file, run as named on onnxruntime (name a folder to let auto "
                  "choose)", file=sys.stderr)
        runtime = "onnxruntime" if ort_model == AUTO else project_path(ort_model).runtime
        return prepare(ModelRequest(backend=None, model=onnx, runtime=runtime, threads=threads,
                                    requests=requests)).plan
    request = Request(model_dir=gates_dir, ckpt_dir=model_dir, gpu_model=gpu_model)
    name, why = explain_backend(backend, [], request, among=path_backends())
    if backend == AUTO:
        print(f"[INFO] BACKEND=auto -> {name} ({why})", file=sys.stderr)
    if backend_entry(name).model == ORT_MODEL:  # the checkpoint itself on the CPU: nothing to export
        return prepare(ModelRequest(backend=None, model=model_dir, runtime="pytorch", threads=threads)).plan
    ready = prepare(ModelRequest(backend=name, model_dir=gates_dir, ckpt_dir=model_dir, gpu_model=gpu_model,
                                 threads=threads, device=device), out=sys.stderr)
    print(f"{ready.choice.line()}: {ready.plan.describe()}", file=sys.stderr)
    return ready.plan


def predict_step(arguments: list[str], stdin, *, model_dir: str | None, onnx: str | None, ort_model: str,
                 vocab_file: str | None, max_seq_length: int | None, threads: int | None, requests: str | None,
                 backend: str, gpu_model: str, gates_dir: str, device: int | None, calibration=None) -> None:
    """The predict step: the sentences given (none: `stdin`'s lines) labelled by `onnx` on ORT_MODEL's runtime, else
    by the checkpoint on BACKEND's device; printed."""
    from tinybert.errors import UsageError, expect
    from tinybert.steps.predict import predict, print_predictions, read_sentences

    expect((model_dir is None) != (onnx is None), UsageError,
           "expected exactly one of --model_dir (PyTorch checkpoint) or --onnx (ONNX model), "
           f"got {'both' if model_dir and onnx else 'neither'}")
    sentences = read_sentences(arguments, stdin)
    run_plan = predict_plan(backend=backend, model_dir=model_dir, onnx=onnx, ort_model=ort_model, gates_dir=gates_dir,
                            gpu_model=gpu_model, threads=threads, requests=requests, device=device,
                            calibration=calibration)
    print_predictions(predict(sentences, model_dir=model_dir, onnx=onnx, vocab_file=vocab_file,
                              max_seq_length=max_seq_length, plan=run_plan))
