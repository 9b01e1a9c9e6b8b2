"""Every default of the pipeline, once, with its reason: test/*.sh read them (`settings --shell`, `paths`),
the Python steps the typed constants below; nothing else spells a default (model files: model_kinds.py)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from tinybert.model_kinds import model_path  # noqa: F401  (the steps' one route to a model file)


@dataclass(frozen=True)
class Setting:
    name: str  # the environment variable test/*.sh reads
    # May refer to an earlier setting as {NAME}, or to a value the run computes as {lowercase} (RUN_VALUES).
    # Empty: the variable stays empty unless set (the step decides, e.g. from the backend: per_backend).
    default: str
    why: str
    scripts: tuple[str, ...] = ()  # the test/*.sh that read it; () = every step (through test/common.sh)
    # The default depends on the backend: each backend's entry in the registry gives it (LOOP).
    per_backend: bool = False
    # (script, default) where a script's default differs from `default` (ORT_MODEL=auto for some steps).
    script_defaults: tuple[tuple[str, str], ...] = ()


SETTINGS = (
    Setting("GLUE_DIR", "./glue_dir/SST-2", "the model card's layout: dev.tsv lives in glue_dir/SST-2"),
    Setting("DATA_FILE", "{GLUE_DIR}/dev.tsv", "the card scores the GLUE SST-2 dev set"),
    Setting("CKPT_DIR", "./SST-2_model", "the card's checkpoint folder (config.json, pytorch_model.bin, vocab.txt)"),
    Setting("BIN_DIR", "./bert_bin", "the card's feature folder"),
    Setting("MODEL_DIR", ".", "the card writes .onnx and .om files into the working directory"),
    Setting("RESULT_DIR", "./result", "ais_bench's --output in the card"),
    Setting("SEQ_LEN", "64", "the card's max_seq_length; the longest dev sentence has 55 tokens"),
    Setting("OPSET", "11", "the card's opset: ATC supports it, and exact (erf) GELU needs 9 or later"),
    Setting("BATCH_SIZES", "1 4 8 16 32 64", "the batch sizes of the card's table (batch sizes given as "
                                             "arguments replace it)", scripts=("eval_all.sh", "benchmark.sh")),
    Setting("BACKEND", "auto", "ais_bench where it runs and an OM model exists or will be built, else a CUDA GPU "
                               "(gpu), else ONNX Runtime: the same steps on any server; cann when asked for"),
    Setting("DEVICE", "0", "the NPU (ais_bench --device, BACKEND=cann) or CUDA GPU (BACKEND=gpu) to run on; the "
                           "first one, as ais_bench"),
    Setting("ORT_MODEL", "fast", "fast: fp32, last layer at [CLS] only, length-bucketed, PyTorch's logits within "
                                 "EXPORT_TOLERANCE; auto, where speed is the point: the fastest path that passed "
                                 "its gate at export on this CPU class",
            script_defaults=(("classify.sh", "auto"), ("predict.sh", "auto"), ("eval_all.sh", "auto"),
                             ("serve.sh", "auto"))),
    Setting("GPU_MODEL", "gpu-fp32", "the GPU path BACKEND=gpu runs: gpu-fp32 (TF32 off) is the card's GPU column "
                                     "and PyTorch's logits within EXPORT_TOLERANCE; auto, where speed is the point: "
                                     "the fastest path whose gate passed on this GPU",
            script_defaults=(("classify.sh", "auto"), ("predict.sh", "auto"), ("eval_all.sh", "auto"),
                             ("serve.sh", "auto"))),
    Setting("REQUESTS", "auto", "ONNX Runtime/OpenVINO calls in flight, sharing the threads; auto: one per physical "
                                "core on one thread each, faster than one call on all threads "
                                "(docs/measurements/benchmark-amd-2vcpu.md)",
            scripts=("ais_inference.sh", "perf.sh", "predict.sh", "eval_all.sh", "classify.sh", "loadgen.sh",
                     "serve.sh")),
    Setting("CALL_TOKENS", "512", "the most positions (sentences x padded length) one CPU call computes (0: whole "
                                  "batches): larger calls outgrow the caches, smaller pay per-call overhead "
                                  "(docs/measurements/call-tokens-amd-2vcpu.md)",
            scripts=("ais_inference.sh", "perf.sh", "eval_all.sh", "benchmark.sh", "classify.sh", "loadgen.sh",
                     "serve.sh")),
    Setting("BUCKET_EDGES", "tight", "tight: each length-sorted batch padded to its own longest sample, faster on "
                                     "the CPU than the 16/32/48/64 gears (docs/measurements/benchmark-amd-2vcpu.md)"),
    Setting("DYNAMIC_DIMS", "", "empty: the card's static OM models; e.g. 16,32,48,64 builds Ascend gear models"),
    Setting("OUTFMT", "TXT", "ais_bench's output format in the card"),
    Setting("PRECISION_MODE", "force_fp16", "ATC's inference default, as in the card"),
    Setting("CANN_SET_ENV", "/usr/local/Ascend/ascend-toolkit/set_env.sh", "where the CANN toolkit installs "
                                                                           "its environment script"),
    Setting("PYTHON", "python3", "the interpreter of the model card's commands; test/common.sh spells this one "
                                 "default itself, since it needs Python to read this table (a test keeps both equal)"),
    # Read by some scripts only.
    Setting("LOOP", "", "timed iterations: the card's ais_bench --loop 1000; 100 on ONNX Runtime on the CPU, "
                        "where one takes far longer, rounded up to whole passes over the length-bucketed batches",
            scripts=("perf.sh", "perf_gpu.sh", "eval_all.sh"), per_backend=True),
    Setting("PERF_SECONDS", "3", "timed seconds per repeat at least: whole passes go on past LOOP until then, so a "
                                 "figure is not one short burst a scheduler hiccup moves; 0: LOOP alone",
            scripts=("perf.sh", "perf_gpu.sh", "eval_all.sh", "gpu_check.sh")),
    Setting("PERF_REPEATS", "5", "timed repeats per batch size: the median is reported with the min-max spread, so "
                                 "one disturbed repeat does not move it and the spread shows what to trust",
            scripts=("perf.sh", "perf_gpu.sh", "eval_all.sh", "gpu_check.sh")),
    Setting("OUTPUT_DIRNAME", "", "empty: a new result folder named by the start time, as ais_bench names it; "
                                  "an existing folder is never overwritten", scripts=("ais_inference.sh",)),
    Setting("EVAL_DIR", "./eval_results/{stamp}", "one new folder per evaluation, named by its start time: an "
                                                 "earlier table is never overwritten", scripts=("eval_all.sh",)),
    Setting("PTH_BATCH_SIZE", "64", "batch size of the pth column's PyTorch eager run (the card's largest; "
                                    "any batch size gives the same predictions)", scripts=("eval_all.sh",)),
    Setting("CHIP_NAME", "", "empty: no OM models are built; on an NPU server the Name column of 'npu-smi info' "
                             "(e.g. 310P3) makes eval_all.sh build them with ATC, so BACKEND=auto can pick ais_bench",
            scripts=("eval_all.sh",)),
    Setting("BENCH_DIR", "./benchmark_results", "each run adds a benchmark-<time> folder here, beside the card's "
                                                "folders", scripts=("benchmark.sh",)),
    Setting("REPEATS", "3", "timed passes per row, the median reported: one disturbed pass on a shared machine "
                            "does not move the figure, and the whole benchmark stays within minutes",
            scripts=("benchmark.sh",)),
    Setting("ONNX_MODEL", "", "empty: PyTorch eager on CKPT_DIR, nothing to export first; an .onnx file runs ONNX "
                              "Runtime instead, a folder of exported models ORT_MODEL's", scripts=("predict.sh",)),
    Setting("CALIB_FILE", "{GLUE_DIR}/train.tsv", "static int8 calibrates on the training split, never on the "
                                                  "evaluation set (DATA_FILE); name any labelled or unlabelled "
                                                  "SST-2 TSV of your own",
            scripts=("pth2onnx.sh", "eval_all.sh", "benchmark.sh", "classify.sh", "ais_inference.sh", "perf.sh",
                     "predict.sh", "loadgen.sh", "loadgen_measure.sh")),
    Setting("CALIB_SAMPLES", "300", "sentences drawn (seeded) from CALIB_FILE for the activation ranges: "
                                    "300 calibrates in seconds and passed the dev gate "
                                    "(docs/measurements/calib-samples.md)",
            scripts=("pth2onnx.sh", "eval_all.sh", "benchmark.sh", "ais_inference.sh", "perf.sh")),
    Setting("CALIB_SEED", "0", "the fixed seed of the calibration sample, recorded next to the model",
            scripts=("pth2onnx.sh", "eval_all.sh", "benchmark.sh", "ais_inference.sh", "perf.sh")),
    Setting("FAST_MODELS", "1", "the fast models are ONNX Runtime's default path, so they are exported when "
                                "missing or older than the weights; 0 skips them (only the card's static pair)",
            scripts=("pth2onnx.sh",)),
    Setting("CLASSIFY_BATCH", "64", "classify's batch size: length-sorted inside each chunk and run as calls of "
                                    "CALL_TOKENS positions, so bs 8-64 differ little "
                                    "(docs/measurements/benchmark-amd-2vcpu.md)",
            scripts=("classify.sh", "serve.sh")),
    Setting("GPU_CLASSIFY_BATCH", "4096", "classify's batch on a GPU where CLASSIFY_BATCH is not set: length-sorted "
                                          "in each chunk, each batch one CUDA graph at its length rounded up to 8",
            scripts=("classify.sh", "classify_gpu_check.sh")),
    Setting("CHUNK_SENTENCES", "8192", "classify's unit of work, resuming and Ray tasks: smaller chunks cost more "
                                       "CPU, larger more memory; a kill loses one chunk at most "
                                       "(docs/measurements/chunk-sentences-2core-loaded.md)", scripts=("classify.sh",)),
    Setting("ENGINE", "local", "classify on this machine, no cluster needed; ray runs the same chunks on a Ray "
                               "cluster (RAY_ADDRESS) or a local one, with identical output", scripts=("classify.sh",)),
    Setting("ACTOR_CPUS", "1", "CPUs (and threads) of each Ray actor, one model session each: the local rule of "
                               "REQUESTS=auto, one call per core on one thread", scripts=("classify.sh",)),
    Setting("TOKENIZE_WORKERS", "auto", "classify on a GPU tokenizes chunks ahead of the model on every core: auto, "
                                        "the tokenizer's own threads in this process; N, N processes",
            scripts=("classify.sh", "classify_gpu_check.sh")),
    Setting("TOKENIZE_AHEAD", "2", "chunks tokenized ahead of the one the GPU runs, so the GPU never waits on the "
                                   "tokenizer; memory holds this many chunks and one more", scripts=("classify.sh",)),
    Setting("CHECK_BATCH_SIZES", "1 8 64 1024", "gpu-check's perf batch sizes: the card's smallest, middle and "
                                                "largest, and one where the GPU is busy", scripts=("gpu_check.sh",)),
    Setting("CORPUS_TARGET", "650000", "the issue's rate for the model on a corpus at fp16 on an H200 (issue 25), "
                                       "printed beside gpu-check's measured one", scripts=("gpu_check.sh", "gpu_all.sh")),
    Setting("CHECK_SENTENCES", "1000000", "classify-check's corpus, its TSV repeated to this many sentences at "
                                          "least: the size the issue measures classify by",
            scripts=("classify_gpu_check.sh",)),
    Setting("CHECK_TARGET", "0.8", "classify-check's least end-to-end rate over the tokenizer's alone: the GPU "
                                   "hidden behind the tokenizing", scripts=("classify_gpu_check.sh", "gpu_all.sh")),
    Setting("GPU_ALL_CORPUS", "{GLUE_DIR}/train.tsv", "gpu_all.sh's corpus: the model alone and classify run on it",
            scripts=("gpu_all.sh",)),
    Setting("GPU_ALL_LINES", "0", "gpu_all.sh's slice of its corpus, in data lines (0: all of it); a faked GPU's "
                                  "run takes a few", scripts=("gpu_all.sh",)),
    Setting("GPU_ALL_DIR", "./gpu_all/{stamp}", "gpu_all.sh's record (record.md for docs/measurements/, "
                                                "record.json) and its working files", scripts=("gpu_all.sh",)),
    Setting("CARD_SHAPE_TARGET", "4861", "gpu_all.sh's least fp16 rate at the card's [1, 64], sentences/s",
            scripts=("gpu_all.sh",)),
    Setting("EVAL_TARGET_S", "180", "gpu_all.sh's most seconds for eval_all.sh 1 4 8 16 32 64 with its GPU column",
            scripts=("gpu_all.sh",)),
    Setting("LOADGEN_DIR", "./loadgen_results", "each LoadGen run adds a loadgen-<scenario>-<time> folder here with "
                                                "LoadGen's own logs: an earlier run's folder is never overwritten",
            scripts=("loadgen.sh", "loadgen_measure.sh")),
    Setting("LOADGEN_PROFILE", "quick", "quick: LoadGen's least query counts for early stopping in a few seconds "
                                        "(CI); full: a minute per run on a CPU; official: MLPerf's 600 s",
            scripts=("loadgen.sh", "loadgen_measure.sh")),
    Setting("LOADGEN_LATENCY_MS", "10", "Server's p99 latency bound: MLPerf's own generic Server target "
                                        "(mlperf.conf), the answer time a person deploying a classifier asks of it",
            scripts=("loadgen.sh", "loadgen_measure.sh")),
    Setting("LOADGEN_QPS", "800", "Server's scheduled queries/s when --qps is not given: a rate the project's CPU "
                                  "paths hold at the bound on 2 vCPUs; the first measured run on a machine sets it",
            scripts=("loadgen.sh",)),
    Setting("LOADGEN_OFFLINE_QPS", "5000", "Offline's expected samples/s: LoadGen sizes its one query as this x the "
                                           "min duration, so a figure below the real rate ends the run too soon "
                                           "(INVALID); above it only makes the run longer",
            scripts=("loadgen.sh", "loadgen_measure.sh")),
    Setting("LOADGEN_EXPECTED_MS", "0.05", "SingleStream/MultiStream: LoadGen pre-generates min duration / this many "
                                           "queries; below the fastest call, so a run never ends short (memory only)",
            scripts=("loadgen.sh",)),
    Setting("LOADGEN_WAIT_MS", "0", "Server: a free worker's wait for more rows; none: a call takes what queued while "
                                    "workers were busy (docs/measurements/loadgen-intel-2vcpu.md)",
            scripts=("loadgen.sh", "loadgen_measure.sh")),
    Setting("LOADGEN_BATCHER", "budget", "Server: budget (rows join a call within CALL_TOKENS once more queue than "
                                         "workers); nowait (one row per call) is the baseline it is measured against",
            scripts=("loadgen.sh",)),
    Setting("SERVE_PORT", "8000", "serve's HTTP port: Ray Serve's own default", scripts=("serve.sh",)),
    Setting("SERVE_METRICS_PORT", "9000", "serve's Prometheus metrics on a port of their own, as TEI serves them",
            scripts=("serve.sh",)),
    Setting("SERVE_REPLICAS", "1", "serve's model replicas, one process each; on a GPU one replica per GPU "
                                   "(num_gpus 1)", scripts=("serve.sh",)),
    Setting("SERVE_WAIT_MS", "2", "the longest a batch waits for more requests once one is queued: short "
                                  "against one call, so a lone request is not held back", scripts=("serve.sh",)),
    Setting("SERVE_MAX_INPUTS", "32", "sentences one request may carry (more: 413): TEI's "
                                      "max_client_batch_size default", scripts=("serve.sh",)),
    Setting("SERVE_MAX_BYTES", "2000000", "the largest request body (more: 413): TEI's payload_limit default",
            scripts=("serve.sh",)),
    Setting("SERVE_MAX_QUEUED", "64", "requests a replica holds waiting for the model (more: 429 Overloaded): "
                                      "a full queue already waits many batches", scripts=("serve.sh",)),
    Setting("SERVE_RETRY_AFTER", "1", "seconds a 429's Retry-After asks a client to wait: about the time a full "
                                      "queue takes to drain", scripts=("serve.sh",)),
    Setting("SERVE_DRAIN_S", "2", "seconds /health reports 503 after SIGTERM before Serve stops: a load "
                                  "balancer's health check notices and stops sending", scripts=("serve.sh",)),
)
# Values a run computes, which defaults may refer to as {name}.
RUN_VALUES = {"stamp": "the run's start time, YYYY_MM_DD-HH_MM_SS as in ais_bench's result folder names"}
TIMESTAMP_FORMAT = "%Y_%m_%d-%H_%M_%S"

_REFERENCE = re.compile(r"\{([A-Z_]+)\}")


def defaults() -> dict[str, str]:
    """Each setting's default, with references to earlier settings filled in."""
    values: dict[str, str] = {}
    for setting in SETTINGS:
        values[setting.name] = _REFERENCE.sub(lambda m: values[m.group(1)], setting.default)
    return values


def default(name: str, script: str | None = None) -> str:
    """A setting's default; with `script`, that test/*.sh's own default where it has one."""
    value = defaults()[name]
    if script is not None:
        value = dict(setting(name).script_defaults).get(os.path.basename(script), value)
    return value


def setting(name: str) -> Setting:
    from tinybert.errors import UsageError

    for candidate in SETTINGS:
        if candidate.name == name:
            return candidate
    raise UsageError(f"expected a setting among {', '.join(s.name for s in SETTINGS)}, got {name!r}")


def for_script(script: str | None) -> tuple[Setting, ...]:
    """The settings a test/*.sh reads: the shared ones and those naming it (all of them for None)."""
    if script is None:
        return SETTINGS
    script = os.path.basename(script)
    return tuple(s for s in SETTINGS if not s.scripts or script in s.scripts)


# Typed defaults for the Python steps (the same table).
SEQ_LEN = int(default("SEQ_LEN"))
OPSET = int(default("OPSET"))
BATCH_SIZES = tuple(int(bs) for bs in default("BATCH_SIZES").split())
REPEATS = int(default("REPEATS"))
PERF_SECONDS = float(default("PERF_SECONDS"))
PERF_REPEATS = int(default("PERF_REPEATS"))
CALL_TOKENS = int(default("CALL_TOKENS"))
WARMUP = 5  # untimed calls before perf's timed loop: the first calls allocate and pack weights
CLASSIFY_BATCH = int(default("CLASSIFY_BATCH"))
GPU_CLASSIFY_BATCH = int(default("GPU_CLASSIFY_BATCH"))
CHUNK_SENTENCES = int(default("CHUNK_SENTENCES"))
ACTOR_CPUS = int(default("ACTOR_CPUS"))
TOKENIZE_AHEAD = int(default("TOKENIZE_AHEAD"))
CHECK_BATCH_SIZES = tuple(int(bs) for bs in default("CHECK_BATCH_SIZES").split())
CORPUS_TARGET = int(default("CORPUS_TARGET"))
CHECK_SENTENCES = int(default("CHECK_SENTENCES"))
CHECK_TARGET = float(default("CHECK_TARGET"))
LOADGEN_LATENCY_MS = float(default("LOADGEN_LATENCY_MS"))
LOADGEN_QPS = float(default("LOADGEN_QPS"))
LOADGEN_OFFLINE_QPS = float(default("LOADGEN_OFFLINE_QPS"))
LOADGEN_EXPECTED_MS = float(default("LOADGEN_EXPECTED_MS"))
LOADGEN_WAIT_MS = float(default("LOADGEN_WAIT_MS"))


@dataclass(frozen=True)
class LoadGenProfile:
    """How long LoadGen runs: its min duration per run, and per scenario the least queries its early stopping needs
    for the percentile judged (SingleStream p90: 64; MultiStream and Server p99: 662; Offline one query)."""

    min_duration_ms: int
    min_queries: tuple[tuple[str, int], ...] = (("SingleStream", 64), ("MultiStream", 662), ("Server", 662),
                                                ("Offline", 1))


LOADGEN_PROFILES = {"quick": LoadGenProfile(1000), "full": LoadGenProfile(60000), "official": LoadGenProfile(600000)}
LOADGEN_MULTISTREAM_SAMPLES = 8  # MLPerf's samples per MultiStream query (mlperf.conf)
LOADGEN_SINGLESTREAM_PERCENTILE = 0.9  # the percentiles mlperf.conf judges the scenarios by
LOADGEN_TAIL_PERCENTILE = 0.99
SERVE_PORT = int(default("SERVE_PORT"))
SERVE_METRICS_PORT = int(default("SERVE_METRICS_PORT"))
SERVE_REPLICAS = int(default("SERVE_REPLICAS"))
SERVE_WAIT_MS = float(default("SERVE_WAIT_MS"))
SERVE_MAX_INPUTS = int(default("SERVE_MAX_INPUTS"))
SERVE_MAX_BYTES = int(default("SERVE_MAX_BYTES"))
SERVE_MAX_QUEUED = int(default("SERVE_MAX_QUEUED"))
SERVE_RETRY_AFTER = int(default("SERVE_RETRY_AFTER"))
SERVE_DRAIN_S = float(default("SERVE_DRAIN_S"))
CARD_LARGEST_BATCH = max(BATCH_SIZES)  # the GPU checks' inference batch: the card's largest
# The reference GPU path the checks compare the others with: GPU_MODEL's default, the card's GPU column.
GPU_FP32 = default("GPU_MODEL")
ENGINES = ("local", "ray")
MIN_OPSET = 11  # ATC's ONNX support starts at 11
# fp32 exports must give the logits of PyTorch eager to this max abs difference (float32 rounding
# over 4 layers stays far below it; a wrong graph is off by far more).
EXPORT_TOLERANCE = 1e-4
VERIFY_SAMPLES = 32  # samples the card's static export is checked on (whole batches of it)
FAST_VERIFY_SAMPLES = 1024  # the fast models are checked on more: they also change batching
FAST_VERIFY_BATCH = 32  # the batch size of their check (their batch axis is dynamic)
# Reduced-precision paths are gated on the dev set, against the fp32 path and PyTorch eager.
MAX_ACCURACY_DROP = 0.3  # points
MIN_AGREEMENT = 0.99

# Beside the models: what each ORT_MODEL (GPU_MODEL) path's check found, on which CPU class (GPU), read by auto.
GATE_RECORD_FILE = "TinyBERT_{path}.gate.json"
CALIB_SAMPLES = int(default("CALIB_SAMPLES"))
CALIB_SEED = int(default("CALIB_SEED"))
CALIB_BATCH = 16  # calibration batches, length-bucketed like inference (ranges do not depend on it)
# The roofline at the model's shapes: M = batch size x SST-2 dev's mean real length; each rate the fastest
# of many short samples after a warm-up, catching free moments (docs/measurements/roofline-sampling-2core-loaded.md).
ROOFLINE_TOKENS = 25
ROOFLINE_MIN_TIME_S = 0.02
ROOFLINE_SAMPLES = 5
ROOFLINE_BUDGET_S = 1.0
# Inductor's caches for the compiled GPU path (TORCHINDUCTOR_CACHE_DIR, torch's own variable, overrides it): a later
# run reuses each shape's compiled code and autotuning instead of minutes of compiling.
COMPILE_CACHE_DIR = "~/.cache/tinybert/torch-compile"
GPU_BENCH_BATCH_SIZES = (1024, 4096)  # the benchmark's GPU rows also run here: where a GPU reaches its rate
GPU_BENCH_MIN_BATCHES = 4  # at those sizes the data is repeated to this many batches: a rate, not one call
GPU_LENGTH_STEP = 8  # GPU calls pad their length up to a multiple of this: fewer shapes to capture, masked exactly
PEAK_FMA_PIPES = 2  # vector FMA pipes per core in the printed CPU peak: two on server cores (some Xeons have one)


GPU_SPEED_RECORD_FILE = "gpu_speed.json"  # the benchmark's GPU figures per path, beside the gate records


def gate_record_path(path: str, model_dir: str = ".") -> str:
    """The gate record of the ORT_MODEL path `path` in `model_dir`."""
    return os.path.join(model_dir, GATE_RECORD_FILE.format(path=path))
