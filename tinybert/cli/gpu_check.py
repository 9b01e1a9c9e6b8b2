"""`python -m tinybert gpu-check` (test/gpu_check.sh): its command line; the check itself is checks/gpu_check.py."""

from __future__ import annotations

from tinybert.cli.parsers import DEFAULTS, StepTable, batch_sizes, non_negative_int, positive_int
from tinybert.checks.gpu_all import COMPARED_SIZES, EVAL_SIZES, PARTS
from tinybert.settings import CORPUS_TARGET, PERF_REPEATS

STEPS = StepTable()
step = STEPS.step


@step("gpu-check", "check a GPU machine end to end (preprocess, GPU inference at fp32 and the fastest gated "
                   "precision, accuracy, perf, classify) with a PyTorch image's packages alone")
def _gpu_check(argv, prog):
    p = STEPS.parser("gpu-check", prog)
    p.add_argument("--data_file", default=DEFAULTS["DATA_FILE"], help="DATA_FILE: the labelled evaluation TSV")
    p.add_argument("--corpus", default=None, help="a corpus to classify, e.g. SST-2's train.tsv (none: skipped)")
    p.add_argument("--ckpt_dir", default=DEFAULTS["CKPT_DIR"], help="CKPT_DIR: the checkpoint")
    p.add_argument("--work_dir", default="./gpu_check", help="features, gate records, result folders and outputs")
    p.add_argument("--batch_sizes", type=batch_sizes, default=DEFAULTS["CHECK_BATCH_SIZES"],
                   help="CHECK_BATCH_SIZES: perf's batch sizes")
    p.add_argument("--seconds", type=float, default=1.0, help="timed seconds per perf repeat at least")
    p.add_argument("--loop", type=positive_int, default=None, help="perf's calls per repeat at least (default: "
                                                                   "BACKEND=gpu's LOOP)")
    p.add_argument("--repeats", type=positive_int, default=PERF_REPEATS, help="perf repeats (median, min-max)")
    p.add_argument("--device", type=non_negative_int, default=None, help="DEVICE: the CUDA GPU")
    p.add_argument("--corpus_target", type=positive_int, default=CORPUS_TARGET,
                   help="CORPUS_TARGET: the issue's rate, printed beside the model's on the corpus")
    p.add_argument("--json_out", default=None, help="the summary as JSON (default: <work_dir>/gpu_check.json)")
    p.add_argument("--no_progress", action="store_true")
    a = p.parse_args(argv)
    from tinybert.checks.gpu_check import run_gpu_check

    run_gpu_check(data_file=a.data_file, corpus=a.corpus, ckpt_dir=a.ckpt_dir, work_dir=a.work_dir,
                  batch_sizes=tuple(a.batch_sizes), seconds=a.seconds, loop=a.loop, repeats=a.repeats, device=a.device,
                  json_out=a.json_out, progress=not a.no_progress, corpus_target=a.corpus_target)


def _parts(text: str) -> tuple[str, ...]:
    import argparse

    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [part for part in chosen if part not in PARTS]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(f"expected parts among {', '.join(PARTS)}, got {text!r}")
    return chosen


@step("gpu-all", "every GPU target once (test/gpu_all.sh): the model alone on a corpus, fp16 at [1, 64], classify "
                 "against the tokenizer, eval_all.sh's GPU column, compiled against graph rows; one record")
def _gpu_all(argv, prog):
    import shlex
    import sys

    from tinybert.settings import CHECK_TARGET

    p = STEPS.parser("gpu-all", prog)
    p.add_argument("--corpus", default=DEFAULTS["GPU_ALL_CORPUS"], help="GPU_ALL_CORPUS: e.g. SST-2's train.tsv")
    p.add_argument("--lines", type=non_negative_int, default=DEFAULTS["GPU_ALL_LINES"],
                   help="GPU_ALL_LINES: the corpus's first data lines used (0: all)")
    p.add_argument("--data_file", default=DEFAULTS["DATA_FILE"], help="DATA_FILE: eval_all's and the rows' TSV")
    p.add_argument("--ckpt_dir", default=DEFAULTS["CKPT_DIR"], help="CKPT_DIR: the checkpoint")
    p.add_argument("--device", type=non_negative_int, default=DEFAULTS["DEVICE"], help="DEVICE: the CUDA GPU")
    p.add_argument("--out", default=DEFAULTS["GPU_ALL_DIR"], help="GPU_ALL_DIR: the record and working files")
    p.add_argument("--eval_script", default=None, help="test/eval_all.sh (none: that part fails, said)")
    p.add_argument("--perf_seconds", type=float, default=1.0, help="timed seconds per [1, 64] repeat at least")
    p.add_argument("--perf_repeats", type=positive_int, default=3, help="[1, 64] repeats (the median)")
    p.add_argument("--bench_repeats", type=positive_int, default=3, help="timed passes per compared row")
    p.add_argument("--corpus_target", type=positive_int, default=CORPUS_TARGET, help="CORPUS_TARGET")
    p.add_argument("--card_shape_target", type=positive_int, default=DEFAULTS["CARD_SHAPE_TARGET"],
                   help="CARD_SHAPE_TARGET")
    p.add_argument("--ratio_target", type=float, default=CHECK_TARGET, help="CHECK_TARGET")
    p.add_argument("--eval_target_s", type=float, default=DEFAULTS["EVAL_TARGET_S"], help="EVAL_TARGET_S")
    p.add_argument("--parts", default=",".join(PARTS), type=_parts,
                   help="which targets, comma-separated, in this order (a GPU session short of time reruns one)")
    p.add_argument("--eval_sizes", type=batch_sizes, default=" ".join(map(str, EVAL_SIZES)),
                   help="eval_all.sh's batch sizes, space-separated (the card's; a faked GPU's run takes fewer)")
    p.add_argument("--compare_sizes", type=batch_sizes, default=" ".join(map(str, COMPARED_SIZES)),
                   help="the compiled and CUDA-graph rows' batch sizes, space-separated")
    p.add_argument("--invoked_as", default="python -m tinybert gpu-all", help="the command the record names")
    a = p.parse_args(argv)
    from tinybert.checks.gpu_all import run_gpu_all

    record = run_gpu_all(corpus=a.corpus, data_file=a.data_file, ckpt_dir=a.ckpt_dir, out_dir=a.out, device=a.device,
                         lines=a.lines, eval_script=a.eval_script, command=f"{a.invoked_as}: python -m tinybert gpu-all {shlex.join(argv)}",
                         targets={"corpus": a.corpus_target, "card_shape": a.card_shape_target,
                                  "ratio": a.ratio_target, "eval_s": a.eval_target_s},
                         perf_seconds=a.perf_seconds, perf_repeats=a.perf_repeats, bench_repeats=a.bench_repeats,
                         parts=a.parts, eval_sizes=a.eval_sizes, compare_sizes=a.compare_sizes)
    if any("error" in part for part in record["parts"].values()):
        sys.exit(1)
