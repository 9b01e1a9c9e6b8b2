"""Pure-inference throughput, the ONNX Runtime counterpart of `ais_bench --loop N`."""

from __future__ import annotations

import time

import numpy as np

from tinybert.runtimes import open_runtime
from tinybert.errors import UsageError, expect
from tinybert.fileio import write_json_atomic
from tinybert.runtimes.runner import (CARD_BATCHES, Batch, latency_stats, plan, rows_per_call, run_batches, throughput, throughput_line,
                     wall_clock_line)
from tinybert.registry import loop_default
from tinybert.settings import CALL_TOKENS, SEQ_LEN, WARMUP


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


def measure(model_path: str, batch_size: int, loop: int | None = None, warmup: int = WARMUP, runtime: str = "onnxruntime",
            seq_len: int = SEQ_LEN, json_out: str | None = None, bin_dir: str | None = None,
            bucket_edges: str | None = None, call_tokens: int | None = CALL_TOKENS, **runtime_options) -> dict:
    """Mean compute time per batch over `loop` runs: one full-length batch for a static model, as `ais_bench --loop`;
    with `bin_dir`, a dynamic model cycles through those features' bucketed batches, as on real data."""
    loop = loop or loop_default("onnxruntime")  # the CPU runtimes' LOOP
    expect(loop > 0, UsageError, f"expected a positive --loop, got {loop}")
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
    run_batches(runner.run, arrays, [batches[i % len(batches)] for i in range(warmup)], requests=requests)
    timed = [batches[i % len(batches)] for i in range(loop)]
    tick = time.perf_counter()
    _, compute_ms = run_batches(runner.run, arrays, timed, requests=requests)
    wall_s = time.perf_counter() - tick
    samples = sum(len(b.indices) for b in timed)
    print(f"[INFO] workload: {workload}")
    rows = rows_per_call(timed)
    print(throughput_line(rows, compute_ms))
    print(wall_clock_line(samples, wall_s, requests))
    report = {"backend": runtime, "model": model_path, "batch_size": batch_size, "loop": loop, "workload": workload,
              "requests_in_flight": requests, "NPU_compute_time": latency_stats(compute_ms),
              "rows_per_call": rows, "call_tokens": call_tokens,
              "throughput": throughput(rows, compute_ms), "wall_clock_samples_per_s": samples / wall_s}
    if json_out:
        write_json_atomic(json_out, report)
    return report
