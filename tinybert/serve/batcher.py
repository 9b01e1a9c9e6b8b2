"""Dynamic batching by tokens: requests' encoded rows wait in a bounded queue and leave as one model call when
rows x longest would pass the token budget, the rows limit is reached, or the first one has waited long enough."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from tinybert.errors import ServeRequestError, UsageError, expect
from tinybert.runtimes.runner import call_fits


@dataclass
class _Waiting:
    arrays: tuple  # input_ids, segment_ids, input_mask of this request's rows
    longest: int
    future: asyncio.Future
    queued: float = field(default_factory=time.monotonic)

    @property
    def rows(self) -> int:
        return len(self.arrays[0])


@dataclass(frozen=True)
class BatchStats:
    """One closed batch: what the metrics and the tests see."""

    rows: int
    longest: int
    requests: int
    reason: str  # "budget", "rows" or "wait"
    seconds: float  # the model call


class TokenBatcher:
    """`run(input_ids, segment_ids, input_mask) -> logits` called on worker threads with up to `concurrency` batches
    at once, fed from a queue of at most `max_queued` requests (more: ServeRequestError Overloaded)."""

    def __init__(self, run, *, budget_tokens: int, max_rows: int, wait_s: float, max_queued: int,
                 concurrency: int = 1, on_batch=None):
        expect(budget_tokens > 0 and max_rows > 0 and max_queued > 0 and concurrency > 0, UsageError,
               f"expected a positive token budget, rows, queue and concurrency, got {budget_tokens}, {max_rows}, "
               f"{max_queued}, {concurrency}")
        self.run, self.on_batch = run, on_batch
        self.budget_tokens, self.max_rows, self.wait_s = budget_tokens, max_rows, wait_s
        self.max_queued, self.concurrency = max_queued, concurrency
        self._queue: deque[_Waiting] = deque()
        self._arrived: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._task: asyncio.Task | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._running: set[asyncio.Future] = set()
        self.in_flight = 0  # requests submitted and not yet answered

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Start the batching task on the running event loop (again after close, e.g. a new loop in tests)."""
        if self._task is not None and not self._task.done():
            return
        self._arrived, self._slots = asyncio.Event(), asyncio.Semaphore(self.concurrency)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="model")
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        """Finish what is queued and running, then stop the task and the model threads."""
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    async def drain(self, poll_s: float = 0.005) -> None:
        """Wait until no request is queued or running."""
        while self.in_flight:
            await asyncio.sleep(poll_s)

    async def submit(self, arrays, longest: int) -> np.ndarray:
        """The logits of this request's rows, once its batch has run; Overloaded at once when the queue is full."""
        if self.queued >= self.max_queued:
            raise ServeRequestError("Overloaded", f"expected at most {self.max_queued} queued requests, got one "
                                                  "more: retry later")
        self.start()
        waiting = _Waiting(tuple(arrays), int(longest), asyncio.get_running_loop().create_future())
        self.in_flight += 1
        try:
            self._queue.append(waiting)
            self._arrived.set()
            return await waiting.future
        finally:
            self.in_flight -= 1

    def _fits(self, rows: int, longest: int, more: _Waiting) -> bool:
        rows, longest = rows + more.rows, max(longest, more.longest)
        return rows <= self.max_rows and call_fits(rows, longest, self.budget_tokens)

    def _take(self) -> list[_Waiting]:
        """The longest run of queued requests from the front that stays in the budget (one at least)."""
        taken = [self._queue.popleft()]
        rows, longest = taken[0].rows, taken[0].longest
        while self._queue and self._fits(rows, longest, self._queue[0]):
            more = self._queue.popleft()
            taken.append(more)
            rows, longest = rows + more.rows, max(longest, more.longest)
        return taken

    def _full(self) -> str | None:
        """Why the queue already makes a whole batch ("rows" or "budget"), or None."""
        rows, longest = 0, 0
        for waiting in self._queue:
            if rows and not self._fits(rows, longest, waiting):
                return "rows" if rows + waiting.rows > self.max_rows else "budget"
            rows, longest = rows + waiting.rows, max(longest, waiting.longest)
        if rows >= self.max_rows:
            return "rows"
        return "budget" if rows * longest >= self.budget_tokens else None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = self._queue[0].queued + self.wait_s
            while (reason := self._full()) is None and (left := deadline - time.monotonic()) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except asyncio.TimeoutError:
                    break
            taken, reason = self._take(), reason or "wait"
            task = loop.create_task(self._run(taken, reason, loop))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, taken: list[_Waiting], reason: str, loop) -> None:
        try:
            longest = max(w.longest for w in taken)
            arrays = [np.concatenate([_width(w.arrays[k], longest) for w in taken]) for k in range(3)]
            tick = time.perf_counter()
            logits = await loop.run_in_executor(self._pool, self.run, *arrays)
            stats = BatchStats(len(arrays[0]), longest, len(taken), reason, time.perf_counter() - tick)
        except Exception as exc:  # the model failed: these requests get 424, the server goes on
            error = ServeRequestError("Backend", f"expected the model to run a batch of {len(taken)} request(s), "
                                                 f"got {type(exc).__name__}: {exc}")
            for waiting in taken:
                if not waiting.future.done():
                    waiting.future.set_exception(error)
            return
        finally:
            self._slots.release()
        if self.on_batch is not None:
            self.on_batch(stats)
        start = 0
        for waiting in taken:
            if not waiting.future.done():
                waiting.future.set_result(np.asarray(logits[start:start + waiting.rows]))
            start += waiting.rows


def _width(array: np.ndarray, length: int) -> np.ndarray:
    """The rows cut or zero-padded to `length` positions (requests come at the full length or their own)."""
    if array.shape[1] >= length:
        return array[:, :length]
    return np.pad(array, ((0, 0), (0, length - array.shape[1])))
