"""This machine's measured matrix-multiply rates and the FLOPs of a batch: the roofline a CPU
inference row is held against, printed with every published table so figures from different
machines can be compared.

Two kinds of rate: `model_shape_rate` / `rates_for`, per runtime and precision at the model's own
shapes (M = the tokens of a bucketed batch, K x N = 312x312, 312x1200, 1200x312), the roofline a
row is held against; and the square-size rates (`measured_sgemm_gflops`, `measured_int8_gops`),
a second figure that compares machines but overstates what 312-wide matrices can reach.

Stability, as far as measured: `python -m tinybert roofline --batch_sizes "1 8 32 64"` three times in a
row, twice (2026-11-29, 2-vCPU AMD EPYC, AVX2), each time while four other agents loaded the machine
(load average 3.6-9.5 on 2 CPUs): the best rates of ONNX Runtime and OpenVINO spread 5-69 % between
the runs of a set, PyTorch's up to 99 % (its 2-thread OpenMP calls collapse when one thread is
descheduled). The 10 % target is therefore not shown here; the step prints a warning when the load
average exceeds the CPUs. Run it on an idle machine before quoting rates.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from .settings import ROOFLINE_BUDGET_S, ROOFLINE_MIN_TIME_S, ROOFLINE_SAMPLES


def measured_sgemm_gflops(threads: int, sizes=(512, 1024, 2048), repeats: int = 5) -> dict:
    """This machine's fp32 matrix-multiply rate: the best of PyTorch's BLAS, NumPy's BLAS and ONNX
    Runtime's MLAS over a few square sizes (the roofline a CPU inference row can reach)."""
    import torch

    torch.set_num_threads(threads)
    rates: dict[str, float] = {}
    for size in sizes:
        a, b = torch.randn(size, size), torch.randn(size, size)
        x, y = a.numpy(), b.numpy()
        flops = 2 * size ** 3
        candidates = {"torch.mm": lambda: torch.mm(a, b), "numpy.matmul": lambda: x @ y,
                      "onnxruntime MatMul": _ort_matmul(size, threads, x, y)}
        for name, func in candidates.items():
            rates[name] = max(rates.get(name, 0.0), _best_rate(func, flops, repeats))
    return {"gflops": max(rates.values()), "by_library": rates, "sizes": list(sizes), "threads": threads}


def measured_int8_gops(threads: int, sizes=(512, 1024, 2048), repeats: int = 5) -> dict:
    """This machine's int8 matrix-multiply rate (u8 x s8 -> s32, 2 ops per multiply-add), measured as
    the fp32 one: ONNX Runtime's MLAS MatMulInteger over the same square sizes, with the weights as
    a constant (prepacked, as in a quantized model) and as an input; the best. It uses VNNI or AMX
    where the CPU has them, else AVX2's u8 x s8 multiply-add (`dot_product` says which)."""
    import numpy as np

    from .capabilities import current

    rng = np.random.default_rng(0)
    rates: dict[str, float] = {}
    for size in sizes:
        x = rng.integers(0, 256, size=(size, size), dtype=np.uint8)
        w = rng.integers(-128, 128, size=(size, size), dtype=np.int8)
        flops = 2 * size ** 3
        for name, constant in (("onnxruntime MatMulInteger, constant weights", True),
                               ("onnxruntime MatMulInteger", False)):
            rates[name] = max(rates.get(name, 0.0), _best_rate(_ort_matmul_integer(size, threads, x, w, constant),
                                                               flops, repeats))
    return {"gops": max(rates.values()), "by_library": rates, "sizes": list(sizes), "threads": threads,
            "dot_product": current().int8_dot_product}


def _ort_session(graph, threads: int):
    import onnxruntime as ort
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _ort_matmul_integer(size: int, threads: int, x, w, constant: bool):
    from onnx import TensorProto, helper

    spec = lambda name, kind: helper.make_tensor_value_info(name, kind, [size, size])  # noqa: E731
    inputs = [spec("x", TensorProto.UINT8)] + ([] if constant else [spec("w", TensorProto.INT8)])
    weights = [helper.make_tensor("w", TensorProto.INT8, [size, size], w.tobytes(), raw=True)] if constant else []
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["x", "w"], ["z"])], "matmul_integer", inputs,
                              [spec("z", TensorProto.INT32)], initializer=weights)
    session = _ort_session(graph, threads)
    feed = {"x": x} if constant else {"x": x, "w": w}
    return lambda: session.run(None, feed)


def _ort_matmul(size: int, threads: int, x, y):
    from onnx import TensorProto, helper

    spec = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [size, size])  # noqa: E731
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "y"], ["z"])], "matmul", [spec("x"), spec("y")],
                              [spec("z")])
    session = _ort_session(graph, threads)
    return lambda: session.run(None, {"x": x, "y": y})


def _best_rate(func, flops: float, repeats: int) -> float:
    func()
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - tick)
    return flops / best / 1e9


def batch_flops(config, rows: int, length: int, cls_only_last_layer: bool = False) -> float:
    """Multiply-add FLOPs of the encoder, pooler and classifier for `rows` sequences of `length`;
    with `cls_only_last_layer`, the last layer projects keys and values for every token and does
    the rest (query, attention, output projection, feed-forward) for the [CLS] row only."""
    h, inner = config.hidden_size, config.intermediate_size
    layer_per_token = 2 * (4 * h * h + 2 * h * inner) + 4 * length * h
    full_layers = config.num_hidden_layers - 1 if cls_only_last_layer else config.num_hidden_layers
    per_sample = length * full_layers * layer_per_token
    if cls_only_last_layer:
        per_sample += length * 2 * 2 * h * h + 2 * (2 * h * h + 2 * h * inner) + 4 * length * h
    return rows * (per_sample + 2 * h * h + 2 * h * 2)


def rates_line(sgemm: dict, int8: dict) -> str:
    """The header line every published table carries."""
    return (f"Measured matrix multiply on {sgemm['threads']} thread(s): fp32 **{sgemm['gflops']:.1f} GFLOP/s** (best of "
            f"{', '.join(sgemm['by_library'])}), int8 **{int8['gops']:.1f} GOP/s** (ONNX Runtime MatMulInteger, "
            f"{int8['dot_product']}), square sizes {sgemm['sizes']}.")


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
    """The matrix-multiply rate of `runtime` at `precision` on the model's own shapes (shape_graphs:
    [M,312] x 312x312, 312x1200, 1200x312) for each M of `m_values`, in both thread layouts its rows
    use: one call on all `threads`, and `requests` calls in flight sharing them (PyTorch: one call
    only), each timed as `timing` says; `best` is the faster layout, the roofline a row at that M is
    held against. Raises BackendUnavailableError where the runtime (or OpenVINO's native bf16) is
    missing here."""
    import tempfile

    from .capabilities import current
    from .runner import resolve_requests
    from .shape_graphs import RECIPES, SHAPES, check_recipe

    check_recipe(runtime, precision)
    requests = 1 if runtime == "pytorch" else resolve_requests(requests, threads)
    layouts = {"one_call": 1, **({"concurrent": requests} if requests > 1 else {})}
    rates = {m: {} for m in m_values}
    with tempfile.TemporaryDirectory(prefix="tinybert-roofline-") as work_dir:
        for layout, in_flight in layouts.items():
            for m, rate in _layout_rates(runtime, precision, threads, in_flight, m_values, timing, work_dir).items():
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
    from .shape_graphs import build_runner, chain_flops, inputs

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
    from .errors import BackendUnavailableError

    results = {}
    for runtime, precision in dict.fromkeys(tuple(p) for p in pairs):
        try:
            results[f"{runtime} {precision}"] = model_shape_rate(runtime, precision, m_values, threads, requests, timing)
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
