"""What the model steps (infer, perf, predict) run and how: the run plan of their options from `runtimes.route` (an
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

    @classmethod
    def of(cls, namespace) -> ModelSettings:
        """The fields `namespace` (a step's parsed options) has; the others keep their defaults."""
        return cls(**{f.name: getattr(namespace, f.name) for f in fields(cls) if hasattr(namespace, f.name)})


def plan(settings: ModelSettings, batch_size: int | None, features_dir: str | None = None):
    """The run plan of a step's options: `model` on `runtime`, else what the settings pick for `backend` (GPU_MODEL=auto:
    the GPU paths' gates checked first where no record says, on `features_dir`)."""
    from tinybert.errors import UsageError, expect
    from tinybert.runtimes.route import Request
    from tinybert.runtimes.route import plan_model, plan_settings

    s = settings
    if s.model is not None:
        expect(s.backend is None, UsageError,
               f"expected --runtime with --model (--backend picks a model from the settings), got --backend {s.backend}")
        return plan_model(s.runtime or "onnxruntime", s.model, threads=s.threads, requests=s.requests,
                          device=s.device)
    expect(s.runtime is None, UsageError, f"expected --model with --runtime {s.runtime} (without --model, "
                                          "--backend and the settings pick the runtime)")
    request = Request(s.model_dir, s.ort_model, s.dynamic_dims, ckpt_dir=s.ckpt_dir, gpu_model=s.gpu_model)
    if s.backend == "gpu" and s.gpu_model == "auto":
        from tinybert.export.gpu import ensure_gpu_gates

        ensure_gpu_gates(s.ckpt_dir, s.model_dir, features_dir, device=s.device)
    return plan_settings(s.backend or "onnxruntime", request, batch_size, threads=s.threads, requests=s.requests,
                         device=s.device)


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
    """What runs, and for ORT_MODEL=auto which path it chose and why."""
    if run_plan.choice is not None and run_plan.choice.reason:
        print(run_plan.choice.line())
    print(f"[INFO] {run_plan.describe()}")


def choice_record(run_plan) -> dict | None:
    return run_plan.choice.record() if run_plan.choice is not None else None


def infer(settings: ModelSettings, inputs: list[str], *, output: str, batch_size: int, outfmt: str,
          output_dirname: str | None, progress: bool, bucket_edges: str) -> None:
    """The infer step: the planned model over the feature folders into a result folder; ais_bench on a gear model
    once per gear (`infer_gears`)."""
    from tinybert.steps.inference import manifest_folder, run_inference

    if settings.backend == "ais_bench" and settings.model is None:
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


def predict_gpu_plan(*, backend: str, model_dir: str, gates_dir: str, gpu_model: str, threads: int | None,
                     device: int | None):
    """predict's GPU plan where BACKEND picks the GPU (auto: where torch sees one), else None: PyTorch on the CPU."""
    from tinybert.registry import AUTO
    from tinybert.runtimes.route import Request
    from tinybert.runtimes.route import explain_backend, plan_gpu

    request = Request(model_dir=gates_dir, ckpt_dir=model_dir, gpu_model=gpu_model)
    name, why = explain_backend(backend, [], request, among=("gpu", "onnxruntime"))
    if backend == "auto":
        print(f"[INFO] BACKEND=auto -> {name} ({why})", file=sys.stderr)
    if name != "gpu":
        return None
    if gpu_model == AUTO:
        from tinybert.export.gpu import ensure_gpu_gates

        ensure_gpu_gates(model_dir, gates_dir, device=device)
    run_plan = plan_gpu(request, threads=threads, device=device)
    print(f"{run_plan.choice.line()}: {run_plan.describe()}", file=sys.stderr)
    return run_plan


def predict_model(onnx: str, ort_model: str) -> tuple[str, str]:
    """predict's model file and runtime: a folder runs ORT_MODEL's path in it (auto resolved there); a file runs
    as named, on its path's runtime (auto: ONNX Runtime's); the choice goes to stderr."""
    import os

    from tinybert.registry import AUTO, project_path
    from tinybert.runtimes.route import ort_model_file

    if os.path.isdir(onnx):
        chosen = ort_model_file(ort_model, onnx)
        print(f"{chosen.choice.line()}: {chosen.model} on {chosen.path.runtime}", file=sys.stderr)
        return chosen.model, chosen.path.runtime
    if ort_model == AUTO:
        print(f"[INFO] ORT_MODEL=auto: {onnx} is one file, run as named on onnxruntime (name a folder to let auto "
              "choose)", file=sys.stderr)
        return onnx, "onnxruntime"
    return onnx, project_path(ort_model).runtime


def predict_step(arguments: list[str], stdin, *, model_dir: str | None, onnx: str | None, ort_model: str,
                 vocab_file: str | None, max_seq_length: int | None, threads: int | None, requests: str | None,
                 backend: str, gpu_model: str, gates_dir: str, device: int | None) -> None:
    """The predict step: the sentences given (none: `stdin`'s lines) labelled by `onnx` on ORT_MODEL's runtime, else
    by the checkpoint on BACKEND's device; printed."""
    from tinybert.steps.predict import predict, print_predictions, read_sentences

    runtime = "pytorch"
    if onnx:
        onnx, runtime = predict_model(onnx, ort_model)
    sentences = read_sentences(arguments, stdin)
    run_plan = None if onnx or not model_dir else predict_gpu_plan(
        backend=backend, model_dir=model_dir, gates_dir=gates_dir, gpu_model=gpu_model, threads=threads,
        device=device)
    print_predictions(predict(sentences, model_dir=model_dir, onnx=onnx, vocab_file=vocab_file,
                              max_seq_length=max_seq_length, threads=threads, runtime=runtime, requests=requests,
                              plan=run_plan))
