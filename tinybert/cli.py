"""Command-line front end: one parser per step, each calling one library function.

Expected mistakes (PipelineError) are printed as `[ERROR] ...` without a traceback and exit
non-zero; Ctrl-C and SIGTERM unwind through `finally` blocks so no half-written output remains.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .errors import PipelineError
from .settings import BATCH_SIZES, EXPORT_TOLERANCE, LOOP, MODEL_FILES, OPSET, REPEATS, SEQ_LEN, defaults

DEFAULTS = defaults()  # the settings table: every default below comes from it
VOCAB_FILE = os.path.join(DEFAULTS["CKPT_DIR"], "vocab.txt")

STEPS = {}


def step(name: str, help_text: str):
    def register(func):
        STEPS[name] = (func, help_text)
        return func
    return register


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _parser(name: str, description: str, prog: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog or f"python -m tinybert {name}", description=description,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


@step("preprocess", "SST-2 TSV -> bert_bin/{input_ids,segment_ids,input_mask}/input{i}.bin + manifest.json")
def _preprocess(argv, prog):
    p = _parser("preprocess", STEPS["preprocess"][1], prog)
    p.add_argument("--input_file", default=DEFAULTS["DATA_FILE"], help="SST-2 TSV (dev.tsv or test.tsv)")
    p.add_argument("--vocab_file", default=VOCAB_FILE, help="WordPiece vocabulary of the checkpoint")
    p.add_argument("--output_dir", default=DEFAULTS["BIN_DIR"], help="feature folder to create")
    p.add_argument("--max_seq_length", type=positive_int, default=SEQ_LEN)
    p.add_argument("--overwrite", action="store_true", help="replace features made from other input")
    p.add_argument("--no_progress", action="store_true")
    a = p.parse_args(argv)
    from .features import preprocess

    preprocess(a.input_file, a.vocab_file, a.output_dir, a.max_seq_length, a.overwrite, not a.no_progress)


def _export_options(p: argparse.ArgumentParser, batch_size: bool) -> argparse.ArgumentParser:
    """The options both export steps share."""
    p.add_argument("--model_dir", default=DEFAULTS["CKPT_DIR"], help="TinyBERT checkpoint folder")
    if batch_size:
        p.add_argument("--batch_size", type=positive_int, required=True)
    p.add_argument("--output_dir", default=DEFAULTS["MODEL_DIR"], help="where the .onnx files go")
    p.add_argument("--opset", type=positive_int, default=OPSET)
    p.add_argument("--max_seq_length", type=positive_int, default=SEQ_LEN)
    p.add_argument("--features_dir", default=DEFAULTS["BIN_DIR"], help="real features for the numerical check")
    p.add_argument("--tolerance", type=float, default=EXPORT_TOLERANCE,
                   help="max abs logit difference to PyTorch allowed (fp32 models)")
    return p


@step("export", "checkpoint -> TinyBERT_bs{bs}.onnx -> TinyBERT_sim_bs{bs}.onnx, checked against PyTorch")
def _export(argv, prog):
    a = _export_options(_parser("export", STEPS["export"][1], prog), batch_size=True).parse_args(argv)
    from .export import export

    export(a.model_dir, a.batch_size, a.output_dir, a.opset, a.max_seq_length, a.features_dir, a.tolerance)


@step("export-fast", "checkpoint -> TinyBERT_{dynamic,sim_dynamic}.onnx, fused TinyBERT_fast.onnx, TinyBERT_int8.onnx")
def _export_fast(argv, prog):
    a = _export_options(_parser("export-fast", STEPS["export-fast"][1], prog), batch_size=False).parse_args(argv)
    from .export import export_fast_models

    export_fast_models(a.model_dir, a.output_dir, a.opset, a.max_seq_length, a.features_dir, a.tolerance)


@step("export-int8-static", "fp32 dynamic model -> TinyBERT_int8_static.onnx, calibrated on a seeded sample of "
                            "a training TSV (cached, inputs recorded beside it)")
def _export_int8_static(argv, prog):
    from .settings import CALIB_SAMPLES, CALIB_SEED, MIN_AGREEMENT

    p = _export_options(_parser("export-int8-static", STEPS["export-int8-static"][1], prog), batch_size=False)
    p.add_argument("--calibration_file", default=DEFAULTS["CALIB_FILE"],
                   help="CALIB_FILE: SST-2 TSV to calibrate on (training data, never the evaluation set)")
    p.add_argument("--calibration_samples", type=positive_int, default=CALIB_SAMPLES, help="CALIB_SAMPLES")
    p.add_argument("--calibration_seed", type=int, default=CALIB_SEED, help="CALIB_SEED")
    p.add_argument("--force", action="store_true", help="recalibrate even when the recorded inputs match")
    p.add_argument("--min_agreement", type=float, default=MIN_AGREEMENT,
                   help="the model is removed when it predicts like PyTorch for a smaller fraction of the check samples")
    a = p.parse_args(argv)
    from .export import export_static_int8

    export_static_int8(a.model_dir, a.calibration_file, a.output_dir, a.calibration_samples, a.calibration_seed,
                       a.opset, a.max_seq_length, a.features_dir, a.force, a.min_agreement)


@step("gears", "Ascend gear models: split features per --dynamic_dims gear, or merge per-gear results")
def _gears(argv, prog):
    p = _parser("gears", STEPS["gears"][1], prog)
    sub = p.add_subparsers(dest="action", required=True)
    sp = sub.add_parser("split", help="write <out>/gear<L>/{input_ids,segment_ids,input_mask}/input{i}.bin")
    sp.add_argument("--bin_dir", default=DEFAULTS["BIN_DIR"])
    sp.add_argument("--edges", required=True, help="gear sequence lengths, e.g. 16,32,48,64")
    sp.add_argument("--output_dir", required=True)
    sp.add_argument("--print_gears", action="store_true", help="print '<length> <folder>' per gear, for scripts")
    mp = sub.add_parser("merge", help="merge <parts>/gear<L> ais_bench folders into one result folder")
    mp.add_argument("--parts", required=True)
    mp.add_argument("--output", default=DEFAULTS["RESULT_DIR"])
    mp.add_argument("--output_dirname", default=None)
    mp.add_argument("--outfmt", default=DEFAULTS["OUTFMT"], choices=["TXT", "BIN", "NPY"])
    mp.add_argument("--gears_dir", default=None, help="the split's folder: records which features were run")
    a = p.parse_args(argv)
    from . import gears

    if a.action == "split":
        gears.split(a.bin_dir, a.edges, a.output_dir)
        if a.print_gears:
            for length, folder in gears.gear_folders(a.output_dir):
                print(length, folder)
    else:
        gears.merge(a.parts, a.output, a.outfmt, a.output_dirname, a.gears_dir)


def _backend_options(p):
    p.add_argument("--threads", type=positive_int, default=None, help="intra-op threads (default: physical cores)")


@step("infer", "run a model over the feature folders, writing an ais_bench-style result folder")
def _infer(argv, prog):
    from .backends import backend_names

    p = _parser("infer", STEPS["infer"][1], prog)
    p.add_argument("--model", required=True, help="ONNX model (or checkpoint folder for --backend pytorch)")
    p.add_argument("--input", required=True, help="comma-separated input folders, in model input order")
    p.add_argument("--output", default=DEFAULTS["RESULT_DIR"], help="root of the result folders")
    p.add_argument("--output_dirname", default=None, help="result folder name (default: a timestamp)")
    p.add_argument("--outfmt", default=DEFAULTS["OUTFMT"], choices=["TXT", "BIN", "NPY"])
    p.add_argument("--batchsize", type=positive_int, required=True)
    p.add_argument("--backend", default="onnxruntime", choices=backend_names())
    p.add_argument("--bucket_edges", default=DEFAULTS["BUCKET_EDGES"],
                   help="dynamic-shape models: 'tight' pads each length-sorted batch to its longest sample, "
                        "e.g. '16,32,48,64' to those edges, 'off' to the full length")
    p.add_argument("--no_progress", action="store_true")
    _backend_options(p)
    a = p.parse_args(argv)
    from .inference import run_inference

    run_inference(a.model, [d for d in a.input.split(",") if d], a.output, a.batchsize, a.outfmt, a.backend,
                  a.output_dirname, not a.no_progress, a.bucket_edges, threads=a.threads)


@step("postprocess", "accuracy (or predictions) of a result folder against the feature manifest")
def _postprocess(argv, prog):
    p = _parser("postprocess", STEPS["postprocess"][1], prog)
    p.add_argument("result", help="result folder: a name inside --result_root, or a path")
    p.add_argument("--result_root", default=DEFAULTS["RESULT_DIR"])
    p.add_argument("--bin_dir", default=DEFAULTS["BIN_DIR"], help="feature folder with manifest.json")
    p.add_argument("--predictions_out", default=None, help="also write index<TAB>prediction here")
    p.add_argument("--with_logits", action="store_true", help="add the two logits to the predictions file")
    p.add_argument("--json_out", default=None, help="write the figures as JSON here")
    a = p.parse_args(argv)
    from .postprocess import resolve_result_dir, score

    score(resolve_result_dir(a.result, a.result_root), a.bin_dir, a.predictions_out, a.with_logits, a.json_out)


@step("perf", "pure-inference throughput (ONNX Runtime counterpart of ais_bench --loop)")
def _perf(argv, prog):
    from .backends import backend_names

    p = _parser("perf", STEPS["perf"][1], prog)
    p.add_argument("--model", required=True)
    p.add_argument("--batchsize", type=positive_int, required=True)
    p.add_argument("--loop", type=positive_int, default=LOOP)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--backend", default="onnxruntime", choices=backend_names())
    p.add_argument("--providers", default=None, help="comma-separated ONNX Runtime execution providers")
    p.add_argument("--bin_dir", default=None,
                   help="dynamic-shape models: time the length-bucketed batches of these features")
    p.add_argument("--bucket_edges", default=DEFAULTS["BUCKET_EDGES"], help="as for infer")
    p.add_argument("--json_out", default=None)
    _backend_options(p)
    a = p.parse_args(argv)
    from .perf import measure

    options = {"threads": a.threads}
    if a.providers:
        options["providers"] = a.providers.split(",")
    measure(a.model, a.batchsize, a.loop, a.warmup, a.backend, json_out=a.json_out, bin_dir=a.bin_dir,
            bucket_edges=a.bucket_edges, **options)


@step("report", "assemble the accuracy/performance table recorded by test/eval_all.sh")
def _report(argv, prog):
    p = _parser("report", STEPS["report"][1], prog)
    p.add_argument("--eval_dir", required=True)
    p.add_argument("--batch_sizes", required=True, help="space-separated, e.g. '1 4 8'")
    p.add_argument("--backend", required=True)
    p.add_argument("--model_dir", required=True)
    a = p.parse_args(argv)
    from .report import build_table

    try:
        sizes = [positive_int(s) for s in a.batch_sizes.split()]
    except argparse.ArgumentTypeError as exc:
        p.error(f"--batch_sizes: {exc}")
    print(build_table(a.eval_dir, sizes, a.backend, a.model_dir), end="")


@step("predict", "label and probabilities for sentences given as arguments or on stdin")
def _predict(argv, prog):
    p = _parser("predict", STEPS["predict"][1], prog)
    p.add_argument("sentences", nargs="*", help="sentences to classify (none: one per line on stdin)")
    p.add_argument("--model_dir", default=None, help="TinyBERT checkpoint folder (PyTorch backend)")
    p.add_argument("--onnx", default=None, help="ONNX model (ONNX Runtime backend) instead of --model_dir")
    p.add_argument("--vocab_file", default=None,
                   help=f"WordPiece vocabulary (default: <model_dir>/vocab.txt, or {VOCAB_FILE} with --onnx)")
    p.add_argument("--max_seq_length", type=positive_int, default=None,
                   help=f"tokens per sentence (default: the model's fixed length, else {SEQ_LEN})")
    p.add_argument("--onnx_backend", default="onnxruntime", choices=["onnxruntime", "openvino", "openvino-bf16"],
                   help="what runs --onnx (the bf16 path: openvino-bf16)")
    _backend_options(p)
    a = p.parse_args(argv)
    from .predict import predict, print_predictions, read_sentences

    sentences = read_sentences(a.sentences, sys.stdin)
    print_predictions(predict(sentences, a.model_dir, a.onnx, a.vocab_file, a.max_seq_length, a.threads,
                              a.onnx_backend))


@step("benchmark", "side-by-side throughput/accuracy of PyTorch eager, the card's ONNX model, fast fp32 and int8")
def _benchmark(argv, prog):
    p = _parser("benchmark", STEPS["benchmark"][1], prog)
    p.add_argument("--model_dir", default=DEFAULTS["CKPT_DIR"], help="TinyBERT checkpoint folder")
    p.add_argument("--data_file", default=DEFAULTS["DATA_FILE"], help="labelled SST-2 TSV")
    p.add_argument("--output", default=DEFAULTS["BENCH_DIR"], help="a new benchmark-<time> folder is made here")
    p.add_argument("--batch_sizes", default=" ".join(map(str, BATCH_SIZES)), help="space-separated")
    p.add_argument("--repeats", type=positive_int, default=REPEATS, help="timed passes per row; the median is reported")
    p.add_argument("--max_seq_length", type=positive_int, default=SEQ_LEN)
    p.add_argument("--opset", type=positive_int, default=OPSET)
    p.add_argument("--no_gpu", action="store_true", help="skip the GPU rows even where a GPU provider exists")
    p.add_argument("--no_plot", action="store_true")
    p.add_argument("--calibration_file", default=None,
                   help="CALIB_FILE: training TSV for the static int8 rows (none: those rows are skipped)")
    _backend_options(p)
    a = p.parse_args(argv)
    try:
        sizes = [positive_int(s) for s in a.batch_sizes.replace(",", " ").split()]
    except argparse.ArgumentTypeError as exc:
        p.error(f"--batch_sizes: {exc}")
    from .benchmark import run_benchmark

    run_benchmark(a.model_dir, a.data_file, a.output, sizes, a.repeats, a.max_seq_length, a.opset, a.threads,
                  gpu=not a.no_gpu, plot=not a.no_plot, calibration_file=a.calibration_file)


def _print(text: str) -> None:
    """Text as UTF-8 whatever the locale (the Markdown table has Chinese headers)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


@step("settings", "the settings table: shell defaults for test/common.sh, a script's settings help, README's Markdown")
def _settings(argv, prog):
    p = _parser("settings", STEPS["settings"][1], prog)
    form = p.add_mutually_exclusive_group()
    form.add_argument("--shell", action="store_true",
                      help="lines for eval: each setting, unless set and non-empty, becomes its default")
    form.add_argument("--markdown", action="store_true", help="the table with each default's reason (README.md)")
    form.add_argument("--get", metavar="NAME", default=None, help="print one setting's default")
    p.add_argument("--script", default=None,
                   help="only the settings this test/*.sh reads (the shared ones and its own); default: all")
    p.add_argument("--backend", default=None, help="with --get: the default on this backend (LOOP)")
    a = p.parse_args(argv)
    from . import settings_text
    from .settings import backend_default

    if a.shell:
        text = settings_text.shell_assignments(a.script)
    elif a.markdown:
        text = settings_text.markdown(a.script)
    elif a.get:
        text = backend_default(a.get, a.backend) + "\n"
    else:
        text = settings_text.help_text(a.script)
    _print(text)


def _model_options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The settings that decide which model file a step uses."""
    p.add_argument("--model_dir", default=DEFAULTS["MODEL_DIR"], help="MODEL_DIR: where the .onnx and .om files are")
    p.add_argument("--ort_model", default=DEFAULTS["ORT_MODEL"], help="ORT_MODEL: the ONNX Runtime model")
    p.add_argument("--dynamic_dims", default=DEFAULTS["DYNAMIC_DIMS"],
                   help="DYNAMIC_DIMS: non-empty selects the Ascend gear model")
    return p


FAST_MODEL_GROUP = "fast_models"


@step("paths", "model file names: one per kind, the model a backend runs, or the fast models")
def _paths(argv, prog):
    from .backend_choice import BACKEND_RULES, Request, backend_model
    from .settings import FAST_MODEL_KINDS, model_path

    backends = [rule.name for rule in BACKEND_RULES]
    p = _parser("paths", STEPS["paths"][1], prog)
    p.add_argument("kind", nargs="+",
                   help=f"a model kind ({', '.join(MODEL_FILES)}); a backend ({', '.join(backends)}): the model it "
                        f"runs under --ort_model/--dynamic_dims; {FAST_MODEL_GROUP}: {', '.join(FAST_MODEL_KINDS)}")
    p.add_argument("--batch_size", type=positive_int, default=None, help="for the models made per batch size")
    a = _model_options(p).parse_args(argv)
    request = Request(a.model_dir, a.ort_model, a.dynamic_dims)
    lines = []
    for kind in a.kind:
        if kind == FAST_MODEL_GROUP:
            lines += [model_path(k, a.model_dir, a.batch_size) for k in FAST_MODEL_KINDS]
        elif kind in backends:
            lines.append(backend_model(kind, request, a.batch_size))
        else:
            lines.append(model_path(kind, a.model_dir, a.batch_size))
    _print("".join(f"{line}\n" for line in lines))


@step("backend", "the inference backend for BACKEND (auto: ais_bench where it can run, else ONNX Runtime)")
def _backend(argv, prog):
    from .backend_choice import Request, choose_backend

    p = _parser("backend", STEPS["backend"][1], prog)
    p.add_argument("--requested", default=DEFAULTS["BACKEND"], help="BACKEND: auto or a backend name")
    p.add_argument("--batch_size", type=positive_int, nargs="+", required=True,
                   help="the batch sizes to run (each one's model must exist, unless it will be built)")
    p.add_argument("--chip_name", default="", help="CHIP_NAME: given, the step builds the OM models itself")
    p.add_argument("--cpu_runtime", action="store_true",
                   help="print the backend `infer`/`perf` use for --ort_model instead (onnxruntime, openvino-bf16)")
    a = _model_options(p).parse_args(argv)
    if a.cpu_runtime:
        from .backend_choice import cpu_runtime

        print(cpu_runtime(a.ort_model))
        return
    request = Request(a.model_dir, a.ort_model, a.dynamic_dims, a.chip_name)
    print(choose_backend(a.requested, a.batch_size, request))


class Terminated(BaseException):
    """SIGTERM, turned into an exception so cleanup code runs."""


def _on_sigterm(signum, frame):
    raise Terminated()


def run(name: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run one step; returns the process exit code."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    func = STEPS[name][0]
    try:
        func(sys.argv[1:] if argv is None else argv, prog)
    except PipelineError as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # Disk full, read-only or vanished paths not already named by a step: still one clear line.
        print(f"[ERROR] {exc.filename or 'I/O'}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[ERROR] interrupted; no partial results were kept", file=sys.stderr)
        return 130
    except Terminated:
        print("[ERROR] terminated; no partial results were kept", file=sys.stderr)
        return 143
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in STEPS:
        print("usage: python -m tinybert <step> [options]   (each step has --help)\n\nsteps:")
        for name, (_, help_text) in STEPS.items():
            print(f"  {name:<13} {help_text}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return run(argv[0], argv[1:])
