"""The roofline a CPU row is held against: matrix-multiply rates at the model's own shapes, and a batch's
FLOPs; rates taken on a busy machine do not repeat (docs/measurements/roofline-stability-amd-2vcpu-loaded.md)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from tinybert.settings import ROOFLINE_BUDGET_S, ROOFLINE_MIN_TIME_S, ROOFLINE_SAMPLES


def batch_flops(config, rows: int, length: int, cls_only_last_layer: bool = False) -> float:
    """Multiply-add FLOPs of the encoder, pooler and classifier for `rows` sequences of `length`; with
    `cls_only_last_layer`, the last layer projects keys and values for all tokens, the rest for [CLS] only."""
    h, inner = config.hidden_size, config.intermediate_size
    layer_per_token = 2 * (4 * h * h + 2 * h * inner) + 4 * length * h
    full_layers = config.num_hidden_layers - 1 if cls_only_last_layer else config.num_hidden_layers
    per_sample = length * full_layers * layer_per_token
    if cls_only_last_layer:
        per_sample += length * 2 * 2 * h * h + 2 * (2 * h * h + 2 * h * inner) + 4 * length * h
    return rows * (per_sample + 2 * h * h + 2 * h * 2)


# ---------------------------------------------------------------- at the model's own shapes

@dataclass(frozen=True)
class Timing:
    """How each rate is timed: after a warm-up, samples of at least `min_time_s`, taken until
    `budget_s` has passed and at least `samples` were taken; the fastest sample counts."""

    min_time_s: float = ROOFLINE_MIN_TIME_S
    samples: int = ROOFLINE_SAMPLES
    budget_s: float = ROOFLINE_BUDGET_S


def model_shape_rate(runtime: str, precision: str, m_values, threads: int, requests: int | str | None = None,
                     timing: Timing = Timing()) -> dict:
    """Rates of `runtime` at `precision` on the model's shapes per M of `m_values`, one call on all `threads`
    and `requests` in flight; `best` is the faster. BackendUnavailableError where it cannot run."""
    import tempfile

    from tinybert.capabilities import current
    from tinybert.runtimes.runner import resolve_requests
    from tinybert.bench.shape_graphs import RECIPES, SHAPES, check_recipe

    check_recipe(runtime, precision)
    requests = 1 if runtime == "pytorch" else resolve_requests(requests, threads)
    layouts = {"one_call": 1, **({"concurrent": requests} if requests > 1 else {})}
    rates = {m: {} for m in m_values}
    with tempfile.TemporaryDirectory(prefix="tinybert-roofline-") as work_dir:
        for layout, in_flight in layouts.items():
            for m, rate in _layout_rates(runtime, precision, threads, in_flight=in_flight, m_values=m_values,
                                         timing=timing, work_dir=work_dir).items():
                rates[m][layout] = rate
    return {"runtime": runtime, "precision": precision, "recipe": RECIPES[runtime, precision],
            "features": current().features_for(precision), "unit": "GOP/s" if "int8" in precision else "GFLOP/s",
            "shapes": [list(s) for s in SHAPES], "threads": threads,
            "layouts": {name: _layout_name(threads, n) for name, n in layouts.items()},
            "timing": asdict(timing),
            "by_m": [{"m": m, **r, "best": max(r.values()), "best_layout": max(r, key=r.get)} for m, r in rates.items()]}


def _layout_name(threads: int, in_flight: int) -> str:
    if in_flight == 1:
        return f"one call on {threads} thread(s)"
    return f"{in_flight} calls in flight, {max(1, threads // in_flight)} thread(s) each"


def _layout_rates(runtime, precision, threads, in_flight, m_values, timing: Timing, work_dir) -> dict:
    from tinybert.bench.shape_graphs import build_runner, chain_flops, inputs

    restore = _torch_threads() if runtime == "pytorch" else None
    try:
        run = build_runner(runtime, precision, threads, in_flight, work_dir)
        return {m: chain_flops(m) * _calls_per_second(run, inputs(m), in_flight, timing) / 1e9
                for m in m_values}
    finally:
        if restore:
            restore()


def _torch_threads():
    import torch

    before = torch.get_num_threads()
    return lambda: torch.set_num_threads(before)


def _calls_per_second(run, x, in_flight: int, timing: Timing) -> float:
    """Calls per second over `in_flight` threads calling at once: warm-up, then sized samples, the
    fastest (on a shared machine, many short samples catch the moments the cores were free)."""
    import math
    from concurrent.futures import ThreadPoolExecutor

    def calls(count):
        for _ in range(count):
            run(x)

    with ThreadPoolExecutor(in_flight) as pool:
        def sample(count) -> float:
            tick = time.perf_counter()
            for future in [pool.submit(calls, count) for _ in range(in_flight)]:
                future.result()
            return time.perf_counter() - tick

        sample(2)  # warm-up: each thread's first calls (sessions, infer requests, caches)
        count, seconds = 1, sample(1)
        while seconds < timing.min_time_s:  # size a sample to last min_time_s (also more warm-up)
            count = max(2 * count, math.ceil(1.2 * count * timing.min_time_s / max(seconds, 1e-9)))
            seconds = sample(count)
        times, deadline = [seconds], time.perf_counter() + timing.budget_s
        while len(times) < max(1, timing.samples) or time.perf_counter() < deadline:
            times.append(sample(count))
        best = min(times)
    return count * in_flight / best


def rates_for(pairs, m_values, threads: int, requests: int | str | None = None, timing: Timing = Timing()) -> dict:
    """`model_shape_rate` for each distinct (runtime, precision) of `pairs`, keyed "runtime precision";
    one that cannot run here is {"skipped": why} instead."""
    from tinybert.errors import BackendUnavailableError

    results = {}
    for runtime, precision in dict.fromkeys(tuple(p) for p in pairs):
        try:
            results[f"{runtime} {precision}"] = model_shape_rate(runtime, precision, m_values, threads, requests=requests,
                                                                   timing=timing)
        except BackendUnavailableError as exc:
            results[f"{runtime} {precision}"] = {"runtime": runtime, "precision": precision, "skipped": str(exc)}
    return results


def rate_at(result: dict, m: int) -> float:
    """The best rate of a `model_shape_rate` result at the measured M nearest to `m`."""
    return min(result["by_m"], key=lambda r: abs(r["m"] - m))["best"]


def model_shape_lines(results: dict) -> list[str]:
    """One line per runtime/precision: its rates at each M, the layout each best came from."""
    lines = []
    for key, r in results.items():
        if "skipped" in r:
            lines.append(f"{key}: skipped ({r['skipped']})")
            continue
        cells = "; ".join(f"M={x['m']} " + " / ".join(f"{x[k]:.1f}" for k in r["layouts"]) + f" -> {x['best']:.1f}"
                          for x in r["by_m"])
        lines.append(f"{key} [{r['features']}; {r['recipe']}] {r['unit']} "
                     f"({' / '.join(r['layouts'].values())} -> best): {cells}")
    return lines


class Roofline:
    """The rates one run holds its rows against (each row's `row_recipe` at M = batch size x mean real length,
    taken once at the start), and each row's achieved fraction of its own."""

    def __init__(self, config, threads: int, rows, mean_tokens: float, batch_sizes, timing: Timing = Timing()):
        self.config, self.threads = config, threads
        self.m_values = {bs: max(1, round(bs * mean_tokens)) for bs in batch_sizes}
        pairs = [pair for pair in map(row_recipe, rows) if pair]
        self.rates = rates_for(pairs, sorted(set(self.m_values.values())), threads, timing=timing)

    def figures(self, path, batch_size: int, batches, fill_to, wall_s: float) -> dict:
        from tinybert.runtimes.runner import tokens_processed

        flops = sum(batch_flops(self.config, fill_to or len(b.indices), b.length, path.cls_only) for b in batches)
        achieved = flops / wall_s / 1e9
        recipe = row_recipe(path)
        result = self.rates.get(" ".join(recipe)) if recipe else None
        rate = rate_at(result, self.m_values[batch_size]) if result and "skipped" not in result else None
        return {"tokens": int(tokens_processed(batches, fill_to)), "gflop": flops / 1e9, "achieved_gflops": achieved,
                "roofline_rate": rate, "roofline_recipe": " ".join(recipe) if recipe else None,
                "roofline_fraction": achieved / rate if rate else None}

    def record(self) -> dict:
        return {"model_shape_rates": self.rates, "roofline_m": self.m_values}

    def header(self) -> list[str]:
        return [f"matrix-multiply rates at the model's shapes (M = batch size x mean tokens: "
                f"{', '.join(f'bs{bs} M={m}' for bs, m in self.m_values.items())}), on {self.threads} thread(s):",
                *model_shape_lines(self.rates)]


def row_recipe(path) -> tuple[str, str] | None:
    """The (runtime, precision) whose rate a benchmark row is held against; None for the GPU rows."""
    from tinybert.registry import runtime

    if path.role == "gpu":
        return None
    family = runtime(path.runtime).engine
    precision = "int8_static" if path.model == "int8_static" else path.precision
    return family, precision
