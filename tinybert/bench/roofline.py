"""The roofline a row is held against: matrix-multiply rates at the model's own shapes on its device (CPU or GPU),
and a batch's FLOPs; rates taken on a busy machine do not repeat (docs/measurements/roofline-stability-amd-2vcpu-loaded.md)."""

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
                     timing: Timing = Timing(), device: int = 0) -> dict:
    """Rates of `runtime` at `precision` on the model's shapes per M of `m_values` (a GPU chain on GPU `device`), one
    call on all `threads` and `requests` in flight; `best` is the faster. BackendUnavailableError where it cannot run."""
    import tempfile

    from tinybert.capabilities import current, gpu
    from tinybert.runtimes.runner import resolve_requests
    from tinybert.bench.shape_graphs import SHAPES, check_recipe

    chain, owner = check_recipe(runtime, precision)
    requests = resolve_requests(requests, threads) if owner.requests else 1
    layouts = {"one_call": 1, **({"concurrent": requests} if requests > 1 else {})}
    rates = {m: {} for m in m_values}
    with tempfile.TemporaryDirectory(prefix="tinybert-roofline-") as work_dir:
        for layout, in_flight in layouts.items():
            for m, rate in _layout_rates(runtime, precision, threads, in_flight=in_flight, m_values=m_values,
                                         timing=timing, work_dir=work_dir, device=device).items():
                rates[m][layout] = rate
    return {"runtime": runtime, "precision": precision, "recipe": chain.recipe,
            "features": gpu(device).name if on_gpu(runtime, precision) else current().features_for(precision),
            "unit": unit(precision),
            "shapes": [list(s) for s in SHAPES], "threads": threads,
            "layouts": {name: _layout_name(threads, n) for name, n in layouts.items()},
            "timing": asdict(timing),
            "by_m": [{"m": m, **r, "best": max(r.values()), "best_layout": max(r, key=r.get)} for m, r in rates.items()]}


def _layout_name(threads: int, in_flight: int) -> str:
    if in_flight == 1:
        return f"one call on {threads} thread(s)"
    return f"{in_flight} calls in flight, {max(1, threads // in_flight)} thread(s) each"


def _layout_rates(runtime, precision, threads, in_flight, m_values, timing: Timing, work_dir, device: int = 0) -> dict:
    from tinybert.bench.shape_graphs import build_runner, chain_flops, inputs

    run = build_runner(runtime, precision, threads, in_flight, work_dir, device=device)
    return {m: chain_flops(m) * _calls_per_second(run, inputs(m), in_flight, timing) / 1e9 for m in m_values}


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


def rates_for(pairs, m_values, threads: int, requests: int | str | None = None, timing: Timing = Timing(),
              device: int = 0) -> dict:
    """`model_shape_rate` for each distinct (runtime, precision) of `pairs`, keyed "runtime precision";
    one that cannot run here is {"skipped": why} instead."""
    from tinybert.errors import BackendUnavailableError

    results = {}
    for runtime, precision in dict.fromkeys(tuple(p) for p in pairs):
        try:
            results[f"{runtime} {precision}"] = model_shape_rate(runtime, precision, m_values, threads, requests=requests,
                                                                   timing=timing, device=device)
        except BackendUnavailableError as exc:
            results[f"{runtime} {precision}"] = {"runtime": runtime, "precision": precision, "skipped": str(exc)}
    return results


# The runtime/precision pairs the `roofline` step measures by default.
def cpu_pairs() -> tuple[str, ...]:
    """Every CPU chain of the registry's runtimes, "engine precision": what the roofline step measures by default."""
    from tinybert.registry import CPU, chains

    return tuple(f"{engine} {chain.precision}" for engine, chain, owner in chains() if owner.device == CPU)


def load_average() -> float:
    """The 1-minute load average, where the system reports one (0.0 elsewhere)."""
    import os

    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def run_roofline(*, batch_sizes: list[int], tokens: int, threads: int | None, requests: str,
                 pairs: list[tuple[str, str]] | None, timing: Timing, square: bool, json_out: str | None,
                 device: int = 0) -> dict:
    """The `roofline` step: the rates of `pairs` (default: cpu_pairs()) at M = each batch size x `tokens`, printed with
    the machine and its load, the square-size rates too with `square`; the report, written to `json_out` if given."""
    from tinybert.capabilities import current
    from tinybert.machine import cpu_model

    sizes = batch_sizes
    threads = threads or current().physical_cores
    m_values = [bs * tokens for bs in sizes]
    print(f"[INFO] {cpu_model()}: {current().describe()}; {threads} thread(s)")
    print(f"[INFO] M = batch size x {tokens} tokens: " + ", ".join(f"bs{bs} M={m}" for bs, m in zip(sizes, m_values)))
    pairs = pairs or [tuple(pair.split()) for pair in cpu_pairs()]
    load = [load_average()]
    results = rates_for(pairs, m_values, threads, requests, timing, device=device)
    load.append(load_average())
    for line in model_shape_lines(results):
        print(f"[INFO] {line}")
    if max(load) > current().logical_cpus:
        print(f"[WARN] load average {max(load):.1f} on {current().logical_cpus} logical CPU(s): other processes "
              "competed for the cores, so these rates understate the machine's and are not stable figures")
    report = {"machine": current().describe(), "threads": threads, "batch_sizes": sizes, "tokens": tokens,
              "load_average": load, "model_shape": results}
    if square:
        from tinybert.bench.square_rates import measured_int8_gops, measured_sgemm_gflops, rates_line

        report["sgemm"], report["int8_matmul"] = measured_sgemm_gflops(threads), measured_int8_gops(threads)
        print(f"[INFO] square sizes (second figure): {rates_line(report['sgemm'], report['int8_matmul'])}")
    if json_out:
        from tinybert.fileio import write_json_atomic

        write_json_atomic(json_out, report)
    return report


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


def precision_class(precision: str) -> str:
    """The precision a rate is compared within: static and dynamic int8 are both int8 multiply-adds."""
    return "int8" if precision.startswith("int8") else precision


def unit(precision: str) -> str:
    return "GOP/s" if precision_class(precision) == "int8" else "GFLOP/s"


# ---------------------------------------------------------------- the CPU's peak

# Ops per cycle per vector bit the FMA pipes take (an fp32 FMA: 2 per 32 bits; a bf16 pair dot product: 4;
# a u8 x s8 quad: 8, half that without VNNI's one instruction), and per core for AMX's tile unit.
SIMD_OPS_PER_BIT = {"AVX-512 FMA": (512, 1 / 16), "AVX2 FMA": (256, 1 / 16), "SSE": (128, 1 / 16),
                    "AVX512-BF16": (512, 1 / 8), "VNNI": (512, 1 / 4), "AVX2 u8s8 (no VNNI)": (256, 1 / 8),
                    "no SIMD int8 dot product": (128, 1 / 16)}
AMX_OPS_PER_CORE = {"AMX-BF16": 1024, "AMX-INT8": 2048}


def cpu_peak(precision: str, cores: int, clock_mhz: float | None, caps=None) -> dict:
    """cores x clock x ops per cycle for the instructions `precision` uses here (capabilities.features_for);
    512-bit ops run on 256-bit pipes on AMD (Zen 4 double-pumps them)."""
    from tinybert.capabilities import AMD, current
    from tinybert.settings import PEAK_FMA_PIPES

    caps = caps or current()
    features = caps.features_for(precision)
    if features == "no native bf16 (emulated)":
        features = caps.features_for("fp32")  # converted to fp32 and computed there
    if features in AMX_OPS_PER_CORE:
        per_cycle, how = AMX_OPS_PER_CORE[features], "the AMX tile unit"
    else:
        width, per_bit = SIMD_OPS_PER_BIT[features]
        if features == "VNNI" and "avx512_vnni" not in caps.flags:
            width = 256  # AVX-VNNI: the same instruction on 256-bit registers
        pipe = width if width < 512 or caps.vendor != AMD else 256
        per_cycle, how = PEAK_FMA_PIPES * pipe * per_bit, f"{PEAK_FMA_PIPES} pipes x {pipe} bits"
    peak = cores * clock_mhz * per_cycle / 1000.0 if clock_mhz else None
    return {"precision": precision, "features": features, "ops_per_cycle": per_cycle, "pipes": how, "cores": cores,
            "clock_mhz": clock_mhz, "peak": peak, "unit": unit(precision)}


def peak_line(peak: dict) -> str:
    if peak["peak"] is None:
        return f"{peak['precision']}: no clock reported, no peak ({peak['features']})"
    return (f"{peak['precision']} {peak['cores']} core(s) x {peak['clock_mhz']:.0f} MHz x {peak['ops_per_cycle']:g} "
            f"= {peak['peak']:.0f} {peak['unit']} ({peak['features']}, {peak['pipes']})")


# ---------------------------------------------------------------- the GPU's peak

# Dense FLOPs per SM per clock by compute capability (NVIDIA's datasheets: peak / (SMs x boost clock)); fp32 on
# the CUDA cores, tf32/fp16/bf16 on the tensor cores; a precision a generation lacks has no entry.
GPU_FLOPS_PER_SM_CLOCK = {
    (7, 0): {"fp32": 128, "fp16": 1024},
    (7, 5): {"fp32": 128, "fp16": 1024},
    (8, 0): {"fp32": 128, "tf32": 1024, "fp16": 2048, "bf16": 2048},
    (8, 6): {"fp32": 256, "tf32": 512, "fp16": 1024, "bf16": 1024},
    (8, 9): {"fp32": 256, "tf32": 512, "fp16": 1024, "bf16": 1024},
    (9, 0): {"fp32": 256, "tf32": 2048, "fp16": 4096, "bf16": 4096},
}
GPU_KEY = "GPU "  # a GPU precision's roofline key: "GPU fp16", apart from the CPU's "fp16"


def gpu_peak(precision: str, gpu) -> dict:
    """SMs x clock x FLOPs per SM per clock for `precision` on `gpu` (capabilities.Gpu); no peak where the
    compute capability, the SM count or the clock is unknown."""
    per_clock = GPU_FLOPS_PER_SM_CLOCK.get(tuple(gpu.capability), {}).get(precision)
    peak = gpu.multiprocessors * gpu.clock_mhz * per_clock / 1000.0 if per_clock and gpu.multiprocessors and \
        gpu.clock_mhz else None
    return {"precision": precision, "device": gpu.name, "capability": ".".join(map(str, gpu.capability)),
            "multiprocessors": gpu.multiprocessors, "clock_mhz": gpu.clock_mhz, "flops_per_sm_clock": per_clock,
            "peak": peak, "unit": "GFLOP/s"}


def gpu_peak_line(peak: dict) -> str:
    if peak["peak"] is None:
        return (f"{peak['precision']}: no peak ({peak['device']}, compute capability {peak['capability']}, "
                f"{peak['multiprocessors']} SMs, clock {peak['clock_mhz'] or 'not reported'}, per-SM rate "
                f"{peak['flops_per_sm_clock'] or 'not known'})")
    return (f"{peak['precision']} {peak['multiprocessors']} SMs x {peak['clock_mhz']:.0f} MHz x "
            f"{peak['flops_per_sm_clock']} = {peak['peak']:.0f} GFLOP/s ({peak['device']}, compute capability "
            f"{peak['capability']})")


def roofline_key(precision: str, on_gpu: bool) -> str:
    """Rates compare within one device and precision class."""
    return GPU_KEY + precision if on_gpu else precision_class(precision)


# ---------------------------------------------------------------- a run's roofline

class Roofline:
    """What one run holds its rows against: per precision and M (= batch size x mean real length), the best
    rate any engine reaches in the run, its matrix-multiply chains (timed once at the start) or its rows."""

    def __init__(self, config, threads: int, rows, mean_tokens: float, batch_sizes, timing: Timing = Timing(),
                 gpu_batch_sizes=(), device: int = 0):
        from tinybert.capabilities import current, gpu
        from tinybert.machine import cpu_clock_mhz

        self.config, self.threads = config, threads
        sizes = list(dict.fromkeys([*batch_sizes, *gpu_batch_sizes]))
        self.m_values = {bs: max(1, round(bs * mean_tokens)) for bs in sizes}
        pairs = list(dict.fromkeys(pair for pair in map(row_recipe, rows) if pair))
        cpu_m = sorted({self.m_values[bs] for bs in batch_sizes})
        self.rates = rates_for([p for p in pairs if not on_gpu(*p)], cpu_m, threads, timing=timing)
        self.rates.update(rates_for([p for p in pairs if on_gpu(*p)], sorted(set(self.m_values.values())),
                                    threads, timing=timing, device=device))
        clock, self.clock_source = cpu_clock_mhz()
        cores = min(threads, current().physical_cores)
        precisions = dict.fromkeys(precision_class(p) for r, p in pairs if not on_gpu(r, p))
        self.peaks = {p: cpu_peak(p, cores, clock) for p in precisions}
        self.gpu_peaks = {GPU_KEY + p: gpu_peak(p, gpu(device)) for r, p in pairs if on_gpu(r, p)}
        self.best: dict = {}  # batch size -> precision -> the best rate and where it came from
        self.best_lines: list[str] = []

    def figures(self, path, batch_size: int, batches, fill_to, wall_s: float) -> dict:
        """A row's work and rate, and its fraction of its own engine's chain (`finish` adds the roofline)."""
        from tinybert.runtimes.runner import tokens_processed

        flops = sum(batch_flops(self.config, fill_to or len(b.indices), b.length, path.cls_only) for b in batches)
        achieved = flops / wall_s / 1e9
        recipe = row_recipe(path)
        result = self.rates.get(" ".join(recipe)) if recipe else None
        own = rate_at(result, self.m_values[batch_size]) if result and "skipped" not in result else None
        return {"tokens": int(tokens_processed(batches, fill_to)), "gflop": flops / 1e9, "achieved_gflops": achieved,
                "own_rate": own, "own_recipe": " ".join(recipe) if recipe else None,
                "own_fraction": achieved / own if own else None, "roofline_rate": None, "roofline_source": None,
                "roofline_fraction": None}

    def finish(self, batch_size: int, rows: list[dict]) -> list[str]:
        """Set each row's roofline, the best rate of its device and precision at this M among the chains and the
        rows (so never above 1); one line per precision: that best, and how far it is from the device's peak."""
        m = self.m_values[batch_size]
        best = {}
        for key, result in self.rates.items():
            if "skipped" not in result and any(x["m"] == m for x in result["by_m"]):
                _offer(best, roofline_key(result["precision"], on_gpu(result["runtime"], result["precision"])), rate_at(result, m),
                       f"{key} chain")
        for r in rows:
            _offer(best, roofline_key(r["precision"], r.get("on_gpu")), r["achieved_gflops"], f"row {r['row']}")
        for r in rows:
            top = best.get(roofline_key(r["precision"], r.get("on_gpu")))
            if top:
                r.update(roofline_rate=top["rate"], roofline_source=top["source"],
                         roofline_fraction=r["achieved_gflops"] / top["rate"])
        self.best[batch_size] = best
        lines = [self._best_line(batch_size, m, precision, top) for precision, top in best.items()]
        self.best_lines += lines
        return lines

    def _best_line(self, batch_size: int, m: int, precision: str, top: dict) -> str:
        line = f"bs{batch_size} (M={m}) {precision} roofline: {top['rate']:.1f} {unit(precision)} ({top['source']})"
        on_gpu = precision.startswith(GPU_KEY)
        peak = (self.gpu_peaks if on_gpu else self.peaks).get(precision, {}).get("peak")
        if peak and on_gpu:
            line += f", {100 * top['rate'] / peak:.0f}% of the GPU peak"
        elif peak:
            line += f", {100 * top['rate'] / peak:.0f}% of the CPU peak"
            if top["rate"] > peak:
                line += (" (above it: the cores ran faster than the clock read, or have more FMA pipes than "
                         "PEAK_FMA_PIPES)")
        return line

    def record(self) -> dict:
        return {"model_shape_rates": self.rates, "roofline_m": self.m_values, "cpu_peaks": self.peaks,
                "gpu_peaks": self.gpu_peaks,
                "clock_source": self.clock_source,
                "roofline_best": {str(bs): best for bs, best in self.best.items()}, "roofline_best_lines": self.best_lines}

    def header(self) -> list[str]:
        return [f"matrix-multiply rates at the model's shapes (M = batch size x mean tokens: "
                f"{', '.join(f'bs{bs} M={m}' for bs, m in self.m_values.items())}), on {self.threads} thread(s):",
                *model_shape_lines(self.rates),
                f"CPU peak (cores x clock x ops per cycle; clock from {self.clock_source}): "
                + "; ".join(peak_line(p) for p in self.peaks.values()),
                *([f"GPU peak (SMs x max SM clock x dense FLOPs per SM per clock of its compute capability): "
                   + "; ".join(gpu_peak_line(p) for p in self.gpu_peaks.values())] if self.gpu_peaks else [])]


def _offer(best: dict, precision: str, rate: float, source: str) -> None:
    if rate and rate > best.get(precision, {"rate": 0.0})["rate"]:
        best[precision] = {"rate": rate, "source": source}


def row_recipe(path) -> tuple[str, str] | None:
    """The (engine, precision) of the chain a benchmark row's own engine runs (registry.chain_for); None where its
    runtime has none on its device (ONNX Runtime's GPU rows)."""
    from tinybert.registry import chain_for

    found = chain_for(path)
    return (found[0], found[1].precision) if found else None


def on_gpu(engine: str, precision: str) -> bool:
    """The chain runs on a CUDA GPU: held against the GPU's peak, apart from the CPU's."""
    from tinybert.registry import CUDA, chain

    return chain(engine, precision)[1].device == CUDA
