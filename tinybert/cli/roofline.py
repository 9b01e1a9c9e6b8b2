"""The `roofline` step: this machine's matrix-multiply rates at the model's own shapes, per runtime
and precision (roofline.py), printed so their stability can be checked by running it again."""

from __future__ import annotations

import argparse

from tinybert.settings import BATCH_SIZES, ROOFLINE_BUDGET_S, ROOFLINE_MIN_TIME_S, ROOFLINE_SAMPLES, ROOFLINE_TOKENS
from tinybert.cli.parsers import DEFAULTS, StepTable, batch_sizes, positive_int

from tinybert.registry import CPU, chains

PAIRS = tuple(f"{engine} {chain.precision}" for engine, chain, owner in chains() if owner.device == CPU)  # the CPU's


def _pair(text: str) -> tuple[str, str]:
    pair = tuple(text.replace(":", " ").replace("/", " ").split())
    if pair not in [(engine, chain.precision) for engine, chain, _ in chains()]:
        raise argparse.ArgumentTypeError(f"expected a runtime/precision among {', '.join(PAIRS)}, got {text!r}")
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
                   help=f"which rates, e.g. onnxruntime/int8; all by default: {', '.join(PAIRS)}")
    p.add_argument("--min_time", type=float, default=ROOFLINE_MIN_TIME_S, help="seconds per timed sample, at least")
    p.add_argument("--samples", type=positive_int, default=ROOFLINE_SAMPLES, help="timed samples at least")
    p.add_argument("--budget", type=float, default=ROOFLINE_BUDGET_S,
                   help="seconds of samples per rate (more samples while time is left); the fastest is kept")
    p.add_argument("--square", action="store_true",
                   help="also the square-size fp32 and int8 rates (512-2048), the second, machine-comparison figure")
    p.add_argument("--json_out", default=None, help="write the rates as JSON here")
    a = p.parse_args(argv)
    for name in ("min_time", "budget"):
        if getattr(a, name) < 0:
            p.error(f"--{name}: expected a non-negative number of seconds, got {getattr(a, name)}")
    _run(a, list(a.batch_sizes))


def _load_average() -> float:
    """The 1-minute load average, where the system reports one (0.0 elsewhere)."""
    import os

    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def _run(a, sizes) -> None:
    from tinybert.capabilities import current
    from tinybert.machine import cpu_model
    from tinybert.bench.roofline import Timing, model_shape_lines, rates_for

    threads = a.threads or current().physical_cores
    m_values = [bs * a.tokens for bs in sizes]
    print(f"[INFO] {cpu_model()}: {current().describe()}; {threads} thread(s)")
    print(f"[INFO] M = batch size x {a.tokens} tokens: " + ", ".join(f"bs{bs} M={m}" for bs, m in zip(sizes, m_values)))
    pairs = a.pairs or [tuple(pair.split()) for pair in PAIRS]
    load = [_load_average()]
    results = rates_for(pairs, m_values, threads, a.requests, Timing(a.min_time, a.samples, a.budget))
    load.append(_load_average())
    for line in model_shape_lines(results):
        print(f"[INFO] {line}")
    if max(load) > current().logical_cpus:
        print(f"[WARN] load average {max(load):.1f} on {current().logical_cpus} logical CPU(s): other processes "
              "competed for the cores, so these rates understate the machine's and are not stable figures")
    report = {"machine": current().describe(), "threads": threads, "batch_sizes": sizes, "tokens": a.tokens,
              "load_average": load, "model_shape": results}
    if a.square:
        from tinybert.bench.square_rates import measured_int8_gops, measured_sgemm_gflops, rates_line

        report["sgemm"], report["int8_matmul"] = measured_sgemm_gflops(threads), measured_int8_gops(threads)
        print(f"[INFO] square sizes (second figure): {rates_line(report['sgemm'], report['int8_matmul'])}")
    if a.json_out:
        from tinybert.fileio import write_json_atomic

        write_json_atomic(a.json_out, report)
