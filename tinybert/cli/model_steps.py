"""The command lines of the steps that run a model: infer, perf, predict and the benchmark; what each runs is
steps/model_runs.py's (an explicit --model on --runtime, or the settings test/*.sh pass through)."""

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
    _calibration_options(p)


def _calibration_options(p: argparse.ArgumentParser) -> None:
    """CALIB_FILE and its sample: what the calibrated int8 models are exported from, when a step exports them."""
    from tinybert.settings import CALIB_SAMPLES, CALIB_SEED

    p.add_argument("--calibration_file", default=None,
                   help="CALIB_FILE: training TSV the calibrated int8 models (int8_static, openvino_int8) are exported "
                        "from when missing (none: auto passes them over)")
    p.add_argument("--calibration_samples", type=positive_int, default=CALIB_SAMPLES, help="CALIB_SAMPLES")
    p.add_argument("--calibration_seed", type=int, default=CALIB_SEED, help="CALIB_SEED")


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
    from tinybert.steps.model_runs import ModelSettings, infer

    infer(ModelSettings.of(a), [d for d in a.input.split(",") if d], output=a.output, batch_size=a.batchsize,
          outfmt=a.outfmt, output_dirname=a.output_dirname, progress=not a.no_progress, bucket_edges=a.bucket_edges)


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
    from tinybert.steps.model_runs import ModelSettings, perf

    perf(ModelSettings.of(a), batch_size=a.batchsize, loop=positive_int(a.loop) if a.loop else None,
         warmup=a.warmup, seconds=a.seconds, repeats=a.repeats,
         providers=a.providers.split(",") if a.providers else None, bin_dir=a.bin_dir, bucket_edges=a.bucket_edges,
         json_out=a.json_out, progress=not a.no_progress)


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
    _calibration_options(p)
    a = p.parse_args(argv)
    if a.requests is not None and not a.onnx:
        p.error(f"--requests {a.requests}: expected --onnx (PyTorch runs one call at a time)")
    from tinybert.steps.model_runs import predict_step

    predict_step(a.sentences, sys.stdin, model_dir=a.model_dir, onnx=a.onnx, ort_model=a.ort_model,
                 vocab_file=a.vocab_file, max_seq_length=a.max_seq_length, threads=a.threads, requests=a.requests,
                 backend=a.backend, gpu_model=a.gpu_model, gates_dir=a.gates_dir, device=a.device,
                 calibration=calibration(a))


def calibration(a):
    """The Calibration the options name, or None."""
    from tinybert.prepare import Calibration

    return Calibration(a.calibration_file, a.calibration_samples, a.calibration_seed) if a.calibration_file else None


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
    p.add_argument("--device", type=non_negative_int, default=DEFAULTS["DEVICE"],
                   help="DEVICE: the GPU the GPU rows, their roofline chains and its peak are on")
    p.add_argument("--no_loadgen", action="store_true", help="no SingleStream row per project path (by default run "
                                                             "where MLPerf LoadGen is installed)")
    a = p.parse_args(argv)
    import importlib.util

    from tinybert.bench.benchmark import BenchmarkRun, run_benchmark

    latency = None
    if not a.no_loadgen and importlib.util.find_spec("mlperf_loadgen") is not None:
        from tinybert.loadgen.run import singlestream_figures as latency

    run_benchmark(BenchmarkRun(a.model_dir, a.data_file, output_root=a.output, batch_sizes=a.batch_sizes,
                               repeats=a.repeats, seq_len=a.max_seq_length, opset=a.opset, threads=a.threads,
                               gpu=not a.no_gpu, plot=not a.no_plot,
                               calibration_file=a.calibration_file, calibration_samples=a.calibration_samples,
                               calibration_seed=a.calibration_seed,
                               rows=tuple(a.rows.split(",")) if a.rows else None, work_dir=a.work_dir,
                               call_tokens=a.call_tokens, gpu_batch_sizes=a.gpu_batch_sizes,
                               record_dir=a.record_dir, device=a.device, latency=latency))
