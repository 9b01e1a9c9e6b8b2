"""The steps that run a model: infer, perf, predict and the benchmark; what each runs comes from
`runtimes.route` (an explicit --model on --runtime, or the settings test/*.sh pass through)."""

from __future__ import annotations

import argparse
import sys

from tinybert.settings import BATCH_SIZES, CALL_TOKENS, OPSET, PERF_REPEATS, PERF_SECONDS, REPEATS, SEQ_LEN, WARMUP
from tinybert.settings import default
from tinybert.cli.parsers import DEFAULTS, StepTable, VOCAB_FILE, batch_sizes, int_at_least, non_negative_int, positive_int

_device = int_at_least(0, "a non-negative NPU or GPU id")


def _seconds(text: str) -> float:
    """An argparse type: a non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a non-negative number of seconds, got {text!r}")
    return value


def _settings_options(p: argparse.ArgumentParser, batch: bool = True) -> None:
    """The settings that pick the model when --model is not given (test/*.sh pass them through)."""
    from tinybert.registry import RUNTIMES, backend_names

    from tinybert.registry import gpu_models

    p.add_argument("--backend", default=None, choices=backend_names(),
                   help="BACKEND, without --model: onnxruntime runs ORT_MODEL's path, gpu GPU_MODEL's on CUDA "
                        "--device, cann the simplified static model on NPU --device, ais_bench the gear models "
                        "(default: onnxruntime)")
    p.add_argument("--runtime", default=None, choices=sorted(r.name for r in RUNTIMES),
                   help="with --model: the runtime that runs it (default: onnxruntime)")
    p.add_argument("--model_dir", default=DEFAULTS["MODEL_DIR"], help="MODEL_DIR, when --model is not given")
    p.add_argument("--ort_model", default=DEFAULTS["ORT_MODEL"], help="ORT_MODEL, when --model is not given")
    p.add_argument("--gpu_model", default=DEFAULTS["GPU_MODEL"], choices=gpu_models(),
                   help="GPU_MODEL, with --backend gpu (auto: the fastest path whose gate passed on this GPU, checked "
                        "first where no record says)")
    p.add_argument("--ckpt_dir", default=DEFAULTS["CKPT_DIR"], help="CKPT_DIR: the checkpoint --backend gpu runs")
    if batch:
        p.add_argument("--dynamic_dims", default=DEFAULTS["DYNAMIC_DIMS"],
                       help="DYNAMIC_DIMS: gear lengths of the Ascend gear model (--backend ais_bench)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads in all (default: physical cores), shared among the requests in flight")
    p.add_argument("--requests", default=None,
                   help="REQUESTS: calls in flight at once, for the runtimes that take it: 'auto' (one per "
                        f"thread) or a number (default: {DEFAULTS['REQUESTS']} for ORT_MODEL's path; with --model, "
                        "the runtime's own)")
    p.add_argument("--device", type=_device, default=None, help="DEVICE: the NPU or CUDA GPU id, for the NPU backends "
                                                                "and gpu")
    p.add_argument("--call_tokens", type=non_negative_int, default=CALL_TOKENS,
                   help="CALL_TOKENS: dynamic-shape models run each length-bucketed batch as calls of at most this "
                        "many positions (sentences x padded length); 0: one call per batch")


def _plan(a, batch_size: int | None, features_dir: str | None = None):
    """The run plan of a step's options: --model on --runtime, else what the settings pick for --backend (GPU_MODEL=auto:
    the GPU paths' gates checked first where no record says, on `features_dir`)."""
    from tinybert.errors import UsageError, expect
    from tinybert.runtimes.route import Request
    from tinybert.runtimes.route import plan_model, plan_settings

    if a.model is not None:
        expect(a.backend is None, UsageError,
               f"expected --runtime with --model (--backend picks a model from the settings), got --backend {a.backend}")
        return plan_model(a.runtime or "onnxruntime", a.model, threads=a.threads, requests=a.requests,
                          device=a.device)
    expect(a.runtime is None, UsageError, f"expected --model with --runtime {a.runtime} (without --model, "
                                          "--backend and the settings pick the runtime)")
    request = Request(a.model_dir, a.ort_model, getattr(a, "dynamic_dims", ""), ckpt_dir=a.ckpt_dir,
                      gpu_model=a.gpu_model)
    if a.backend == "gpu" and a.gpu_model == "auto":
        from tinybert.export.gpu import ensure_gpu_gates

        ensure_gpu_gates(a.ckpt_dir, a.model_dir, features_dir, device=a.device)
    return plan_settings(a.backend or "onnxruntime", request, batch_size, threads=a.threads, requests=a.requests,
                         device=a.device)


STEPS = StepTable()
step = STEPS.step


@step("infer", "run a model over the feature folders, writing an ais_bench-style result folder")
def _infer(argv, prog):
    p = STEPS.parser("infer", prog)
    p.add_argument("--model", default=None,
                   help="model file (a checkpoint folder for --backend pytorch); default: the one the settings pick")
    p.add_argument("--input", required=True, help="comma-separated input folders, in model input order")
    p.add_argument("--output", default=DEFAULTS["RESULT_DIR"], help="root of the result folders")
    p.add_argument("--output_dirname", default=None, help="result folder name (default: a timestamp)")
    p.add_argument("--outfmt", default=DEFAULTS["OUTFMT"], choices=["TXT", "BIN", "NPY"])
    p.add_argument("--batchsize", type=positive_int, required=True)
    p.add_argument("--bucket_edges", default=DEFAULTS["BUCKET_EDGES"],
                   help="dynamic-shape models: 'tight' pads each length-sorted batch to its longest sample, "
                        "e.g. '16,32,48,64' to those edges, 'off' to the full length")
    p.add_argument("--no_progress", action="store_true")
    _settings_options(p)
    a = p.parse_args(argv)
    inputs = [d for d in a.input.split(",") if d]
    if a.backend == "ais_bench" and a.model is None:
        return _infer_gears(a, inputs)
    from tinybert.steps.inference import run_inference

    from tinybert.steps.inference import manifest_folder

    plan = _plan(a, a.batchsize, manifest_folder(inputs))
    _print_plan(plan)
    run_inference(plan.model, inputs, a.output, a.batchsize, outfmt=a.outfmt, runtime=plan.runtime,
                  output_dirname=a.output_dirname, progress=not a.no_progress, bucket_edges=a.bucket_edges,
                  call_tokens=_call_tokens(plan, a.call_tokens), ort_model=_choice_record(plan), **plan.options)


def _call_tokens(plan, requested: int) -> int:
    """CALL_TOKENS, except on a path that runs each batch in one call (the GPU paths: a call is a graph replay)."""
    from tinybert.registry import run_path

    return 0 if plan.path and run_path(plan.path).whole_batches else requested


def _device_name(plan) -> str | None:
    """The GPU a plan runs on, by name (None off the GPU)."""
    from tinybert.capabilities import gpu
    from tinybert.registry import CUDA, runtime

    return gpu(plan.options.get("device") or 0).name if runtime(plan.runtime).device == CUDA else None


def _print_plan(plan) -> None:
    """What runs, and for ORT_MODEL=auto which path it chose and why."""
    if plan.choice is not None and plan.choice.reason:
        print(plan.choice.line())
    print(f"[INFO] {plan.describe()}")


def _choice_record(plan) -> dict | None:
    return plan.choice.record() if plan.choice is not None else None


def _infer_gears(a, inputs: list[str]) -> None:
    """ais_bench on a gear model: once per gear, merged into one result folder (`gears.run_gears`)."""
    from tinybert.errors import UsageError, expect
    from tinybert.steps.gears import run_gears
    from tinybert.steps.inference import manifest_folder
    from tinybert.runtimes.route import Request, backend_model

    bin_dir = manifest_folder(inputs)
    expect(bool(a.dynamic_dims) and bin_dir is not None, UsageError,
           "expected --dynamic_dims and the three folders of a preprocessed feature folder for ais_bench gear "
           "models (the static OM model runs with ais_bench itself: test/ais_inference.sh)")
    om = backend_model("ais_bench", Request(a.model_dir, a.ort_model, a.dynamic_dims), a.batchsize)
    run_gears(om, bin_dir, a.dynamic_dims, a.batchsize, a.output, outfmt=a.outfmt, device=a.device or 0,
              dirname=a.output_dirname)


@step("perf", "pure-inference throughput (ONNX Runtime counterpart of ais_bench --loop)")
def _perf(argv, prog):
    p = STEPS.parser("perf", prog)
    p.add_argument("--model", default=None, help="model file; default: the one the settings pick")
    p.add_argument("--batchsize", type=positive_int, required=True)
    p.add_argument("--loop", default="", help="timed iterations (LOOP); empty: the backend's default")
    p.add_argument("--seconds", type=_seconds, default=PERF_SECONDS,
                   help="PERF_SECONDS: each repeat times whole passes until both --loop iterations and this many "
                        "seconds are done")
    p.add_argument("--repeats", type=positive_int, default=PERF_REPEATS,
                   help="PERF_REPEATS: timed repeats; the median is reported with their min-max spread")
    p.add_argument("--warmup", type=int, default=WARMUP)
    p.add_argument("--no_progress", action="store_true")
    p.add_argument("--providers", default=None, help="comma-separated ONNX Runtime execution providers")
    p.add_argument("--bin_dir", default=None,
                   help="dynamic-shape models: time the length-bucketed batches of these features")
    p.add_argument("--bucket_edges", default=DEFAULTS["BUCKET_EDGES"], help="as for infer")
    p.add_argument("--json_out", default=None)
    _settings_options(p)
    a = p.parse_args(argv)
    from tinybert.steps.perf import measure
    from tinybert.registry import loop_default

    loop = positive_int(a.loop) if a.loop else loop_default(a.backend or "onnxruntime")
    plan = _plan(a, a.batchsize, a.bin_dir)
    options = dict(plan.options)
    if a.providers:
        options["providers"] = a.providers.split(",")
    _print_plan(plan)
    measure(plan.model, a.batchsize, loop, a.warmup, runtime=plan.runtime, json_out=a.json_out, bin_dir=a.bin_dir,
            bucket_edges=a.bucket_edges, call_tokens=_call_tokens(plan, a.call_tokens), repeats=a.repeats,
            min_seconds=a.seconds, progress=not a.no_progress, ort_model=_choice_record(plan),
            device_name=_device_name(plan), **options)


@step("predict", "label and probabilities for sentences given as arguments or on stdin")
def _predict(argv, prog):
    p = STEPS.parser("predict", prog)
    p.add_argument("sentences", nargs="*", help="sentences to classify (none: one per line on stdin)")
    p.add_argument("--model_dir", default=None, help="TinyBERT checkpoint folder (PyTorch backend)")
    p.add_argument("--onnx", default=None,
                   help="instead of --model_dir: an ONNX model, run on ORT_MODEL's runtime, or a folder of exported "
                        "models, of which ORT_MODEL's runs (auto: the fastest whose gate passed here)")
    p.add_argument("--ort_model", default=default("ORT_MODEL", "predict.sh"),
                   help="ORT_MODEL: with --onnx, its path's runtime runs it (bf16: OpenVINO bf16); with a folder, "
                        "its path's model too")
    p.add_argument("--vocab_file", default=None,
                   help=f"WordPiece vocabulary (default: <model_dir>/vocab.txt, or {VOCAB_FILE} with --onnx)")
    p.add_argument("--max_seq_length", type=positive_int, default=None,
                   help=f"tokens per sentence (default: the model's fixed length, else {SEQ_LEN})")
    p.add_argument("--threads", type=positive_int, default=None, help="threads in all (default: physical cores)")
    p.add_argument("--requests", default=None, help="REQUESTS, with --onnx: calls in flight at once")
    p.add_argument("--backend", default="onnxruntime",
                   help="BACKEND, with --model_dir: gpu runs GPU_MODEL's path on the CUDA GPU, auto where torch sees "
                        "one; otherwise PyTorch eager on the CPU (--onnx: ONNX Runtime)")
    p.add_argument("--gpu_model", default=default("GPU_MODEL", "predict.sh"), help="GPU_MODEL, on the GPU")
    p.add_argument("--gates_dir", default=DEFAULTS["MODEL_DIR"],
                   help="MODEL_DIR: where GPU_MODEL=auto reads (and writes) the GPU paths' gate records")
    p.add_argument("--device", type=_device, default=None, help="DEVICE: the CUDA GPU")
    a = p.parse_args(argv)
    from tinybert.steps.predict import predict, print_predictions, read_sentences

    if a.requests is not None and not a.onnx:
        p.error(f"--requests {a.requests}: expected --onnx (PyTorch runs one call at a time)")
    onnx, runtime = a.onnx, "pytorch"
    if a.onnx:
        onnx, runtime = _predict_model(a.onnx, a.ort_model)
    sentences = read_sentences(a.sentences, sys.stdin)
    plan = None if a.onnx or not a.model_dir else _predict_gpu(a)
    print_predictions(predict(sentences, model_dir=a.model_dir, onnx=onnx, vocab_file=a.vocab_file,
                              max_seq_length=a.max_seq_length, threads=a.threads, runtime=runtime,
                              requests=a.requests, plan=plan))


def _predict_gpu(a):
    """predict's GPU plan where BACKEND picks the GPU (auto: where torch sees one), else None: PyTorch on the CPU."""
    from tinybert.registry import AUTO
    from tinybert.runtimes.route import Request
    from tinybert.runtimes.route import explain_backend, plan_gpu

    request = Request(model_dir=a.gates_dir, ckpt_dir=a.model_dir, gpu_model=a.gpu_model)
    name, why = explain_backend(a.backend, [], request, among=("gpu", "onnxruntime"))
    if a.backend == "auto":
        print(f"[INFO] BACKEND=auto -> {name} ({why})", file=sys.stderr)
    if name != "gpu":
        return None
    if a.gpu_model == AUTO:
        from tinybert.export.gpu import ensure_gpu_gates

        ensure_gpu_gates(a.model_dir, a.gates_dir, device=a.device)
    plan = plan_gpu(request, threads=a.threads, device=a.device)
    print(f"{plan.choice.line()}: {plan.describe()}", file=sys.stderr)
    return plan


def _predict_model(onnx: str, ort_model: str) -> tuple[str, str]:
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


@step("benchmark", "side-by-side throughput/accuracy of every CPU (and GPU) path and its peers, from the registry")
def _benchmark(argv, prog):
    from tinybert.settings import CALIB_SAMPLES, CALIB_SEED, GPU_BENCH_BATCH_SIZES

    p = STEPS.parser("benchmark", prog)
    p.add_argument("--model_dir", default=DEFAULTS["CKPT_DIR"], help="TinyBERT checkpoint folder")
    p.add_argument("--data_file", default=DEFAULTS["DATA_FILE"], help="labelled SST-2 TSV")
    p.add_argument("--output", default=DEFAULTS["BENCH_DIR"], help="a new benchmark-<time> folder is made here")
    p.add_argument("--batch_sizes", type=batch_sizes, default=" ".join(map(str, BATCH_SIZES)), help="space-separated")
    p.add_argument("--repeats", type=positive_int, default=REPEATS, help="timed passes per row; the median is reported")
    p.add_argument("--max_seq_length", type=positive_int, default=SEQ_LEN)
    p.add_argument("--opset", type=positive_int, default=OPSET)
    p.add_argument("--no_gpu", action="store_true", help="skip the GPU rows even where a GPU provider exists")
    p.add_argument("--gpu_batch_sizes", type=batch_sizes, default=" ".join(map(str, GPU_BENCH_BATCH_SIZES)),
                   help="the GPU rows' extra batch sizes, the sentences repeated to fill them ('' for none)")
    p.add_argument("--record_dir", default=DEFAULTS["MODEL_DIR"],
                   help="MODEL_DIR: where the GPU speed record goes (GPU_MODEL=auto orders its candidates by it)")
    p.add_argument("--no_plot", action="store_true")
    p.add_argument("--calibration_file", default=None,
                   help="CALIB_FILE: training TSV for the static int8 rows (none: those rows are skipped)")
    p.add_argument("--calibration_samples", type=positive_int, default=CALIB_SAMPLES, help="CALIB_SAMPLES")
    p.add_argument("--calibration_seed", type=int, default=CALIB_SEED, help="CALIB_SEED")
    p.add_argument("--rows", default=None, help="comma-separated row labels to run (default: every row this "
                                                "machine can run); A, the reference, always runs")
    p.add_argument("--threads", type=positive_int, default=None, help="threads in all (default: physical cores)")
    p.add_argument("--call_tokens", type=non_negative_int, default=CALL_TOKENS,
                   help="CALL_TOKENS: the project rows run each batch as calls of at most this many positions")
    p.add_argument("--work_dir", default=None, help="make features and models here and keep them (later runs reuse "
                                                    "what is up to date); default: a scratch folder, removed")
    a = p.parse_args(argv)
    from tinybert.bench.benchmark import BenchmarkRun, run_benchmark

    run_benchmark(BenchmarkRun(a.model_dir, a.data_file, output_root=a.output, batch_sizes=a.batch_sizes,
                               repeats=a.repeats, seq_len=a.max_seq_length, opset=a.opset, threads=a.threads, gpu=not a.no_gpu, plot=not a.no_plot,
                               calibration_file=a.calibration_file, calibration_samples=a.calibration_samples,
                               calibration_seed=a.calibration_seed,
                               rows=tuple(a.rows.split(",")) if a.rows else None, work_dir=a.work_dir,
                               call_tokens=a.call_tokens, gpu_batch_sizes=a.gpu_batch_sizes,
                               record_dir=a.record_dir))
