"""Pure-inference throughput, the ONNX Runtime counterpart of `ais_bench --loop N`: timed several times for
at least a few seconds each, the median reported with the spread of the repeats."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tinybert.runtimes import open_runtime
from tinybert.errors import UsageError, expect
from tinybert.fileio import write_json_atomic
from tinybert.progress import progress as progress_bar
from tinybert.runtimes.runner import (CARD_BATCHES, Batch, batch_shapes, latency_stats, plan, rows_per_call, run_batches,
                                     throughput)
from tinybert.registry import loop_default
from tinybert.settings import CALL_TOKENS, PERF_REPEATS, PERF_SECONDS, SEQ_LEN, WARMUP


def synthetic_arrays(batch_size: int, seq_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A full-length batch, since a static model does the same work whatever the tokens; ids alternate 0 and 1,
    valid in any BERT vocabulary."""
    input_ids = np.tile(np.arange(seq_len, dtype=np.int64) % 2, (batch_size, 1))
    return input_ids, np.zeros_like(input_ids), np.ones_like(input_ids)


def bucketed_feature_batches(bin_dir: str, batch_size: int, edges: str | None = None,
                             call_tokens: int | None = CALL_TOKENS):
    """The features' arrays and the calls a dynamic model makes over their full length-bucketed
    batches (the last, smaller batch only when there is no full one), `call_tokens` positions at most."""
    from tinybert.data.features import load_features

    features, _ = load_features(bin_dir)
    arrays = features.batch(slice(None))
    batches, _ = plan(arrays, batch_size, bucket_edges=edges or "tight", source=bin_dir, call_tokens=call_tokens,
                      full_only=True)
    return arrays, batches


@dataclass(frozen=True)
class Repeat:
    """One timed repeat: whole passes until both the iterations and the seconds asked for are done."""

    iterations: int
    samples: int
    seconds: float
    compute_ms: list
    throughput: float  # ais_bench's formula over this repeat's calls
    wall_clock: float  # samples / seconds

    def figures(self) -> dict:
        return {"iterations": self.iterations, "seconds": self.seconds, "throughput": self.throughput,
                "wall_clock_samples_per_s": self.wall_clock}


def timed_repeat(run_passes, pass_calls: int, loop: int, min_seconds: float, rows: float) -> Repeat:
    """Time `run_passes(n)` (n whole passes of `pass_calls` calls; returns samples and per-call ms) until at least
    `loop` calls and `min_seconds` are done: first the passes `loop` needs, then chunks sized to the time left."""
    compute_ms: list = []
    samples = passes = 0
    chunk = max(1, -(-loop // pass_calls))
    tick = time.perf_counter()
    while True:
        done, ms = run_passes(chunk)
        samples, passes = samples + done, passes + chunk
        compute_ms += ms
        elapsed = time.perf_counter() - tick
        if elapsed >= min_seconds:
            break
        per_pass = elapsed / passes
        chunk = max(1, int((min_seconds - elapsed) / per_pass) + 1) if per_pass > 0 else passes
    return Repeat(passes * pass_calls, samples, elapsed, compute_ms, throughput(rows, compute_ms),
                  samples / elapsed if elapsed > 0 else 0.0)


def spread(values) -> dict:
    """The median of the repeats' figures and their min-max range."""
    values = [float(v) for v in values]
    return {"median": float(np.median(values)), "min": min(values), "max": max(values)}


def figures_lines(rows: float, repeats: list[Repeat], requests: int, min_seconds: float, loop: int) -> list[str]:
    """The printed result: ais_bench's throughput line (its mean time the median repeat's) and the wall-clock
    rate, each the median of the repeats with their spread."""
    fps, wall = spread(r.throughput for r in repeats), spread(r.wall_clock for r in repeats)
    shown = int(rows) if float(rows).is_integer() else round(rows, 3)
    mean_ms = 1000.0 * rows / fps["median"] if fps["median"] > 0 else 0.0
    of = f"median of {len(repeats)} repeat(s) of >= {loop} calls and >= {min_seconds:g} s"
    overlap = (f"; {requests} requests in flight, so the per-call times above overlap and the formula "
               "understates it") if requests > 1 else ""
    return [f"[INFO] throughput 1000*batchsize.mean({shown})/NPU_compute_time.mean({mean_ms:.6f}): "
            f"{fps['median']:.2f} ({of}; min-max {fps['min']:.2f}-{fps['max']:.2f})",
            f"[INFO] wall clock: {wall['median']:.1f} samples/s ({of}; min-max {wall['min']:.1f}-{wall['max']:.1f})"
            f"{overlap}"]


def measure(model_path: str, batch_size: int, loop: int | None = None, warmup: int = WARMUP, runtime: str = "onnxruntime",
            seq_len: int = SEQ_LEN, json_out: str | None = None, bin_dir: str | None = None,
            bucket_edges: str | None = None, call_tokens: int | None = CALL_TOKENS, repeats: int = PERF_REPEATS,
            min_seconds: float = PERF_SECONDS, progress: bool = True, ort_model: dict | None = None,
            device_name: str | None = None, **runtime_options) -> dict:
    """The median throughput of `repeats` repeats (each >= `loop` calls and `min_seconds`) and their spread: a static
    model times one full-length batch, as `ais_bench --loop`; with `bin_dir` a dynamic one the bucketed batches."""
    loop = loop or loop_default("onnxruntime")  # the CPU runtimes' LOOP
    expect(loop > 0, UsageError, f"expected a positive --loop, got {loop}")
    expect(repeats > 0, UsageError, f"expected a positive number of repeats (PERF_REPEATS), got {repeats}")
    expect(min_seconds >= 0, UsageError, f"expected non-negative seconds per repeat (PERF_SECONDS), got {min_seconds}")
    runner = open_runtime(runtime, model_path, **runtime_options)
    if runner.batch_size is not None:
        expect(runner.batch_size == batch_size, UsageError,
               f"{model_path}: the model has a fixed batch size of {runner.batch_size}, expected {batch_size}")
    bucketed = runner.seq_len is None and bin_dir
    call_tokens = call_tokens if bucketed and bucket_edges != CARD_BATCHES else None  # the card's batches: whole
    if bucketed:
        arrays, batches = bucketed_feature_batches(bin_dir, batch_size, bucket_edges, call_tokens)
        # Whole passes only: the batches are sorted by length, so a partial pass would time the
        # shortest sentences and overstate the throughput.
        passes = -(-loop // len(batches))
        loop = passes * len(batches)
        calls = f"calls (at most {call_tokens} positions each)" if call_tokens else "calls (one per batch)"
        batching = "full batches in the card's order (consecutive samples, full length)" \
            if bucket_edges == CARD_BATCHES else "full length-bucketed batches"
        workload = f"{passes} pass(es) over the {len(batches)} {calls} of the {batching} of {bin_dir}"
    else:
        length = runner.seq_len or seq_len
        arrays = synthetic_arrays(batch_size, length)
        batches = [Batch(np.arange(batch_size), length)]
        workload = f"full-length [{batch_size}, {length}] batch"
    requests = runner.requests
    shapes = batch_shapes(batches)
    prepared = runner.warm_up(shapes)  # a runtime that captures or compiles per shape does it now, untimed
    if prepared:
        print(f"[INFO] {len(shapes)} shape(s) captured or compiled in {prepared:.2f} s before the timing (not timed)")
    run_batches(runner.run, arrays, [batches[i % len(batches)] for i in range(warmup)], requests=requests)
    pass_samples = sum(len(b.indices) for b in batches)
    rows = rows_per_call(batches)
    print(f"[INFO] workload: {workload}; each repeat at least {loop} calls and {min_seconds:g} s, {repeats} repeat(s)")

    def run_passes(count: int):
        return count * pass_samples, run_batches(runner.run, arrays, batches * count, requests=requests)[1]

    done: list[Repeat] = []
    bar = progress_bar(None, progress, total=repeats, desc=f"perf bs{batch_size}", unit="repeat")
    try:
        for index in range(repeats):
            done.append(timed_repeat(run_passes, len(batches), loop, min_seconds, rows))
            r = done[-1]
            print(f"[INFO] repeat {index + 1}/{repeats}: {r.iterations} calls, {r.samples} samples in {r.seconds:.3f} s: "
                  f"throughput {r.throughput:.2f}, wall clock {r.wall_clock:.1f} samples/s")
            bar.update(1)
    finally:
        bar.close()
    for line in figures_lines(rows, done, requests, min_seconds, loop):
        print(line)
    fps, wall = spread(r.throughput for r in done), spread(r.wall_clock for r in done)
    report = {"backend": runtime, "model": model_path, "batch_size": batch_size, "loop": loop, "workload": workload,
              "requests_in_flight": requests,
              "NPU_compute_time": latency_stats([ms for r in done for ms in r.compute_ms]),
              "rows_per_call": rows, "call_tokens": call_tokens,
              "throughput": fps["median"], "wall_clock_samples_per_s": wall["median"],
              "spread": {"throughput": [fps["min"], fps["max"]], "wall_clock_samples_per_s": [wall["min"], wall["max"]]},
              "min_seconds": min_seconds, "repeats": [r.figures() for r in done], "prepare_seconds": prepared}
    if ort_model is not None:  # the path the settings' ORT_MODEL named (auto: chosen, and why)
        report["ort_model"] = ort_model
    if device_name is not None:  # the GPU it ran on: the table's GPU column is headed with it
        report["device"] = device_name
    if json_out:
        write_json_atomic(json_out, report)
    return report
