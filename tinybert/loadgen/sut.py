"""The system under test: the QSL (the dev set's features, loaded once) and a SUT whose `issue_queries` only queues;
worker threads run the calls, length-bucketed within the call budget, and complete the samples."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from tinybert.errors import UsageError, expect
from tinybert.runtimes.runner import (CARD_BATCHES, Batch, batch_inputs, bucket_length, call_fits, parse_edges, plan,
                                      plan_lengths, real_lengths)

BUDGET, NOWAIT = "budget", "nowait"
BATCHERS = (BUDGET, NOWAIT)
WINDOW_ROWS = 4  # a call looks this many times its row limit into the queue: shorter rows fill it, the oldest first
# A row joins a call only while the padding it adds stays within about one call's fixed cost, in positions
# (docs/measurements/loadgen-intel-2vcpu.md): padded positions cost as much as real ones.
JOIN_POSITIONS = 8


class Samples:
    """The QSL's data: every sample's three inputs, real length and label, held for the whole process (LoadGen's
    load/unload calls cost nothing)."""

    def __init__(self, features, *, model_seq_len: int | None, bucket_edges: str, source: str = "features"):
        self.arrays = features.batch(slice(None))
        self.labels = features.labels
        self.count = len(self.arrays[0])
        expect(self.count > 0, UsageError, f"{source}: expected samples for LoadGen's QSL, got none")
        self.lengths = real_lengths(self.arrays[2], source)
        self.seq_len = self.arrays[0].shape[1]
        card = bucket_edges == CARD_BATCHES  # the card's batches: every call at the full length
        self.fixed_length = model_seq_len or (self.seq_len if card else None)
        self.edges = None if card else parse_edges(bucket_edges, self.seq_len)

    def call_length(self, indices: np.ndarray) -> int:
        """The padded length of a call of these samples: the model's fixed one, else its longest, bucketed."""
        if self.fixed_length is not None:
            return int(self.fixed_length)
        return bucket_length(int(self.lengths[indices].max()), self.edges)

    def length_of(self, index: int) -> int:
        """The padded length of one sample alone."""
        return self.fixed_length or bucket_length(int(self.lengths[index]), self.edges)

    def take(self, indices) -> tuple[np.ndarray, ...]:
        return tuple(array[indices] for array in self.arrays)


class Calls:
    """Ready calls (lists of (response id, sample index)), first in first out, for the workers to take."""

    def __init__(self):
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, call: list) -> None:
        with self._cond:
            self._queue.append(call)
            self._cond.notify()

    def take(self) -> list | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            return self._queue.popleft() if self._queue else None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Batcher(Calls):
    """Server's batcher: a free worker takes the oldest row and later ones of like length while rows x longest stays in
    the call budget, at once when one is left out, else after `wait_s`; max_rows 1, no wait: the no-wait baseline."""

    def __init__(self, samples: Samples, max_tokens: int | None, max_rows: int, wait_s: float, workers: int = 1):
        super().__init__()
        expect(max_rows > 0 and wait_s >= 0 and workers > 0, UsageError,
               f"expected a positive row limit and worker count and a non-negative wait, got {max_rows} rows, "
               f"{workers} workers and {wait_s} s")
        self.samples, self.max_tokens, self.max_rows, self.wait_s = samples, max_tokens, max_rows, wait_s
        self.workers = workers
        self.window = WINDOW_ROWS * max_rows  # how far past the oldest row a call looks for rows that fit
        self._idle = 0  # workers waiting for rows

    def put(self, call: list) -> None:
        with self._cond:
            self._queue.extend(call)
            self._cond.notify_all()

    def _choose(self) -> tuple[list[int], bool]:
        """Positions in the queue of the next call: the oldest row, then each later one (within a window of the
        oldest) that keeps rows x longest in the budget; and whether it is closed (a row left out, or rows full)."""
        chosen, longest, closed = [], 0, False
        for position, (_, index) in enumerate(self._queue):
            if position >= self.window or len(chosen) == self.max_rows:
                closed = True
                break
            own = self.samples.length_of(index)
            length = max(longest, own)
            if chosen and (length - own) + len(chosen) * (length - longest) > JOIN_POSITIONS:
                continue  # padding it to the call (or the call to it) costs more than a call of its own
            if chosen and not call_fits(len(chosen) + 1, length, self.max_tokens):
                closed = True
                continue
            chosen.append(position)
            longest = length
        return chosen, closed

    def take(self) -> list | None:
        with self._cond:
            while True:
                self._idle += 1
                try:
                    while not self._queue and not self._closed:
                        self._cond.wait()
                finally:
                    self._idle -= 1
                if not self._queue:
                    return None
                deadline = time.monotonic() + self.wait_s
                # With no wait, nothing to scan for: the rows are taken as they are.
                while self.wait_s > 0 and self._queue and not self._choose()[1] and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._queue:  # else another worker took them while this one waited: start again
                    # No backlog (no more rows than workers): one row, as a joined row waits out the others' compute
                    # while a worker frees soon (docs/measurements/loadgen-intel-2vcpu.md).
                    if len(self._queue) <= self.workers:
                        return [self._queue.popleft()]
                    # Idle workers share the queue: one call of many rows would keep them waiting.
                    share = -(-len(self._queue) // (self._idle + 1))
                    return self._pop(self._choose()[0][:share])

    def _pop(self, positions: list[int]) -> list:
        head = [self._queue.popleft() for _ in range(positions[-1] + 1)]
        wanted = set(positions)
        self._queue.extendleft(reversed([entry for at, entry in enumerate(head) if at not in wanted]))
        return [head[at] for at in positions]


class Sut:
    """`issue` only queues (a call per SingleStream query, the runner's plan for MultiStream and Offline, the batcher
    for Server); `requests` workers run the calls and complete each sample with its float32 logits as the data."""

    def __init__(self, lg, runtime, samples: Samples, scenario: str, *, batch_size: int, bucket_edges: str,
                 call_tokens: int | None, batcher: str = BUDGET, wait_s: float = 0.0):
        self.lg, self.runtime, self.samples, self.scenario = lg, runtime, samples, scenario
        self.batch_size, self.bucket_edges, self.call_tokens = batch_size, bucket_edges, call_tokens
        self.fill_to = runtime.batch_size
        self.workers = max(1, int(runtime.requests))
        if scenario == "Server":
            rows = runtime.batch_size or batch_size
            self.source = (Batcher(samples, call_tokens, rows, wait_s, self.workers) if batcher == BUDGET
                           else Batcher(samples, None, 1, 0.0))
        else:
            self.source = Calls()
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []

    # ---- LoadGen's callbacks: queue and return
    def issue(self, query_samples) -> None:
        entries = [(s.id, s.index) for s in query_samples]
        if self.scenario in ("SingleStream", "Server"):
            self.source.put(entries)
            return
        indices = np.fromiter((index for _, index in entries), dtype=np.int64, count=len(entries))
        if self.samples.fixed_length is None:  # an Offline query repeats the QSL many times: no inputs gathered
            batches = plan_lengths(self.samples.lengths[indices], self.batch_size, self.samples.seq_len,
                                   self.bucket_edges, self.call_tokens)
        else:
            batches, _ = plan(self.samples.take(indices), self.batch_size, self.runtime.seq_len,
                              self.runtime.batch_size, self.bucket_edges, call_tokens=self.call_tokens)
        for batch in batches:
            self.source.put([entries[i] for i in batch.indices])

    def flush(self) -> None:
        pass

    # ---- the workers
    def start(self) -> None:
        self._threads = [threading.Thread(target=self._work, name=f"loadgen-worker-{i}", daemon=True)
                         for i in range(self.workers)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self.source.close()
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while (call := self.source.take()) is not None:
            indices = np.fromiter((index for _, index in call), dtype=np.int64, count=len(call))
            try:
                logits = self.run(indices)
            except BaseException as exc:  # every sample still completes, or LoadGen would wait forever
                self.errors.append(exc)
                logits = np.full((len(call), 2), np.nan, dtype=np.float32)
            responses = [self.lg.QuerySampleResponse(response_id, logits[row].ctypes.data, logits[row].nbytes)
                         for row, (response_id, _) in enumerate(call)]
            self.lg.QuerySamplesComplete(responses)  # LoadGen copies the data before it returns

    def run(self, indices: np.ndarray) -> np.ndarray:
        batch = Batch(indices, self.samples.call_length(indices))
        out = self.runtime.run(*batch_inputs(self.samples.arrays, batch, self.fill_to))
        return np.ascontiguousarray(out[:len(indices)], dtype=np.float32)


def warm_shapes(samples: Samples, scenario: str, *, batch_size: int, call_tokens: int | None,
                fixed_batch: int | None, batcher: str = BUDGET) -> list[tuple[int, int]]:
    """Every (rows, length) a call of this scenario can have: each length the QSL's samples pad to, with each row
    count the call budget lets through (one row for SingleStream and the no-wait baseline)."""
    lengths = sorted({samples.length_of(i) for i in range(samples.count)})
    if scenario == "SingleStream" or (scenario == "Server" and batcher == NOWAIT):
        most = 1
    elif scenario == "MultiStream":
        most = min(batch_size, fixed_batch or batch_size)
    else:
        most = fixed_batch or batch_size
    return sorted({(fixed_batch or rows, length) for length in lengths for rows in range(1, most + 1)
                   if call_fits(rows, length, call_tokens)})


def warm(runtime, samples: Samples, shapes: list[tuple[int, int]]) -> int:
    """Each shape compiled or run once before the test (a runtime that compiles per shape would otherwise compile
    inside it): the runtime's own warm-up, then one call per shape on real samples of that length; returns calls."""
    runtime.warm_up(shapes)
    by_length = {}
    for index in range(samples.count):
        by_length.setdefault(samples.length_of(index), index)
    for rows, length in shapes:
        indices = np.full(rows, by_length[length], dtype=np.int64)
        runtime.run(*batch_inputs(samples.arrays, Batch(indices, length), runtime.batch_size))
    return len(shapes)
