"""`python -m tinybert gpu-check` (test/gpu_check.sh): its command line; the check itself is checks/gpu_check.py."""

from __future__ import annotations

from tinybert.cli.parsers import DEFAULTS, StepTable, batch_sizes, non_negative_int, positive_int
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
