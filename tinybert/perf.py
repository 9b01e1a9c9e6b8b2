"""Pure-inference throughput, the ONNX Runtime counterpart of `ais_bench --loop N`."""

from __future__ import annotations

import time

import numpy as np

from . import DEFAULT_SEQ_LEN
from .backends import create_backend
from .errors import UsageError, expect
from .fileio import write_json_atomic
from .inference import latency_stats, throughput, throughput_line


def synthetic_batch(batch_size: int, seq_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A full-length batch: a static model does the same work whatever the token values are.

    Token ids alternate 0 and 1, valid in any BERT vocabulary, however small.
    """
    input_ids = np.tile(np.arange(seq_len, dtype=np.int64) % 2, (batch_size, 1))
    return input_ids, np.zeros_like(input_ids), np.ones_like(input_ids)


def measure(model_path: str, batch_size: int, loop: int = 100, warmup: int = 5, backend: str = "onnxruntime",
            seq_len: int = DEFAULT_SEQ_LEN, json_out: str | None = None, **backend_options) -> dict:
    expect(loop > 0, UsageError, f"expected a positive --loop, got {loop}")
    runner = create_backend(backend, model_path, **backend_options)
    if runner.batch_size is not None:
        expect(runner.batch_size == batch_size, UsageError,
               f"{model_path}: the model has a fixed batch size of {runner.batch_size}, expected {batch_size}")
    batch = synthetic_batch(batch_size, runner.seq_len or seq_len)
    for _ in range(warmup):
        runner.run(*batch)
    compute_ms = []
    for _ in range(loop):
        tick = time.perf_counter()
        runner.run(*batch)
        compute_ms.append((time.perf_counter() - tick) * 1000.0)
    print(throughput_line(batch_size, compute_ms))
    report = {"backend": backend, "model": model_path, "batch_size": batch_size, "loop": loop,
              "NPU_compute_time": latency_stats(compute_ms), "throughput": throughput(batch_size, compute_ms)}
    if json_out:
        write_json_atomic(json_out, report)
    return report
