"""Timing one benchmark row at one batch size: calls planned as the steps plan them, a warm-up (compile time
kept apart), then whole passes, interleaved with the other rows' so drift hits every row alike."""

from __future__ import annotations

import time

import numpy as np

from tinybert.registry import RunPath
from tinybert.runtimes.interface import Runtime
from tinybert.runtimes.runner import batch_shapes, default_gears, plan, run_batches, run_batches_overlapped


def bucket_edges(path: RunPath, seq_len: int) -> str:
    """The runner's bucket setting for the path's batching."""
    if path.batching == "gears":
        return ",".join(map(str, default_gears(seq_len)))
    return path.batching


class RowTiming:
    """One row at one batch size: planned and warmed up when made; `one_pass` times a whole pass."""

    def __init__(self, path: RunPath, runtime: Runtime, arrays, batch_size: int, call_tokens: int):
        self.path, self.runtime, self.arrays = path, runtime, arrays
        self.batches, self.fill_to = plan(arrays, batch_size, runtime.seq_len, runtime.batch_size,
                                          bucket_edges(path, arrays[0].shape[1]),
                                          call_tokens=call_tokens if path.splits_calls else None)
        self.compile_s = runtime.warm_up(batch_shapes(self.batches))
        self._run(self.batches[:3])
        self.passes: list[tuple[float, np.ndarray, list[float]]] = []

    def _run(self, batches):
        if self.path.overlapped:
            return run_batches_overlapped(self.runtime, self.arrays, batches)
        return run_batches(self.runtime.run, self.arrays, batches, self.fill_to, requests=self.runtime.requests)

    def one_pass(self) -> None:
        tick = time.perf_counter()
        logits, compute_ms = self._run(self.batches)
        self.passes.append((time.perf_counter() - tick, logits, compute_ms))

    def figures(self) -> dict:
        """The median pass's rate, per-call times and logits, and what the row ran."""
        wall, logits, compute_ms = sorted(self.passes, key=lambda p: p[0])[len(self.passes) // 2]
        in_flight = self.runtime.requests_in_flight if self.path.overlapped else self.runtime.requests
        return {"wall_s": wall, "sentences_per_s": len(self.arrays[0]) / wall,
                "passes_sentences_per_s": [len(self.arrays[0]) / p[0] for p in self.passes],
                "p50_ms": float(np.percentile(compute_ms, 50)), "p99_ms": float(np.percentile(compute_ms, 99)),
                "batches": self.batches, "fill_to": self.fill_to, "requests_in_flight": int(in_flight),
                "compile_s": self.compile_s, "logits": logits}
