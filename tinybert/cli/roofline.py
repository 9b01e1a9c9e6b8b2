"""The `roofline` step's command line: this machine's matrix-multiply rates at the model's own shapes, per runtime
and precision (bench/roofline.py's run_roofline), printed so their stability can be checked by running it again."""

from __future__ import annotations

import argparse

from tinybert.settings import BATCH_SIZES, ROOFLINE_BUDGET_S, ROOFLINE_MIN_TIME_S, ROOFLINE_SAMPLES, ROOFLINE_TOKENS
from tinybert.bench.roofline import Timing, cpu_pairs
from tinybert.cli.parsers import DEFAULTS, StepTable, batch_sizes, non_negative_int, positive_int
from tinybert.registry import chains


def _pair(text: str) -> tuple[str, str]:
    pair = tuple(text.replace(":", " ").replace("/", " ").split())
    if pair not in [(engine, chain.precision) for engine, chain, _ in chains()]:
        raise argparse.ArgumentTypeError(f"expected a runtime/precision among {', '.join(cpu_pairs())}, got {text!r}")
    return pair


STEPS = StepTable()
step = STEPS.step


@step("roofline", "matrix-multiply rates at the model's shapes ([bs x tokens, 312] x 312x312, 312x1200, 1200x312) "
                  "per runtime and precision")
def _roofline(argv, prog):
    p = STEPS.parser("roofline", prog)
    p.add_argument("--batch_sizes", type=batch_sizes, default=" ".join(map(str, BATCH_SIZES)),
                   help="space-separated; M = each batch size x --tokens")
    p.add_argument("--tokens", type=positive_int, default=ROOFLINE_TOKENS,
                   help="tokens per sentence in a length-bucketed batch (SST-2 dev's mean real length)")
    p.add_argument("--threads", type=positive_int, default=None, help="threads in all (default: physical cores)")
    p.add_argument("--requests", default=DEFAULTS["REQUESTS"],
                   help="REQUESTS: calls in flight in the second layout ('auto': one per thread)")
    p.add_argument("--pairs", type=_pair, nargs="+", default=None, metavar="RUNTIME/PRECISION",
                   help=f"which rates, e.g. onnxruntime/int8; all by default: {', '.join(cpu_pairs())}")
    p.add_argument("--min_time", type=float, default=ROOFLINE_MIN_TIME_S, help="seconds per timed sample, at least")
    p.add_argument("--samples", type=positive_int, default=ROOFLINE_SAMPLES, help="timed samples at least")
    p.add_argument("--budget", type=float, default=ROOFLINE_BUDGET_S,
                   help="seconds of samples per rate (more samples while time is left); the fastest is kept")
    p.add_argument("--square", action="store_true",
                   help="also the square-size fp32 and int8 rates (512-2048), the second, machine-comparison figure")
    p.add_argument("--json_out", default=None, help="write the rates as JSON here")
    p.add_argument("--device", type=non_negative_int, default=DEFAULTS["DEVICE"], help="DEVICE: the GPU chains' GPU")
    a = p.parse_args(argv)
    for name in ("min_time", "budget"):
        if getattr(a, name) < 0:
            p.error(f"--{name}: expected a non-negative number of seconds, got {getattr(a, name)}")
    from tinybert.bench.roofline import run_roofline

    run_roofline(batch_sizes=list(a.batch_sizes), tokens=a.tokens, threads=a.threads, requests=a.requests,
                 pairs=a.pairs, timing=Timing(a.min_time, a.samples, a.budget), square=a.square, json_out=a.json_out,
                 device=a.device)
