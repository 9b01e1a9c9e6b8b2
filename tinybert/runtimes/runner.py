"""Running a model over batches for every step: the card's consecutive batches or length-bucketed ones (padding
every SST-2 batch to 64 wastes most of the work), outputs back in sample order, and ais_bench's figures."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tinybert.errors import DataFormatError, UsageError, expect
from tinybert.runtimes.interface import OverlappedRuntime, PipelinedRuntime, Runtime

# "tight": each length-sorted batch padded to its own longest sample, faster on the CPU than the 16/32/48/64
# gears (docs/measurements/benchmark-amd-2vcpu.md); Ascend gear models need a fixed list.
TIGHT = None
CARD_BATCHES = "off"  # bucket_edges value for the model card's batches: consecutive samples at the full length
GEAR_STEP = 16


def default_gears(seq_len: int) -> tuple[int, ...]:
    """16, 32, ... up to the sequence length (16/32/48/64 for 64)."""
    return tuple(range(GEAR_STEP, seq_len, GEAR_STEP)) + (seq_len,)


@dataclass(frozen=True)
class Batch:
    indices: np.ndarray  # sample indices, in the order fed to the model
    length: int  # padded sequence length of this batch


# ---------------------------------------------------------------- planning

def real_lengths(input_mask: np.ndarray, source: str = "input_mask") -> np.ndarray:
    """Tokens per sample. The trimmed batches keep only the first `length` positions, which is
    exact only for right-padded masks (1...1 0...0): anything else is refused, not mis-scored."""
    lengths = input_mask.sum(axis=1).astype(np.int64)
    positions = np.arange(input_mask.shape[1])[None, :]
    expected = (positions < lengths[:, None]).astype(input_mask.dtype)
    bad = np.flatnonzero((input_mask != expected).any(axis=1))
    expect(bad.size == 0, DataFormatError,
           f"{source}: expected right-padded masks (ones, then zeros) for length bucketing, "
           f"got {bad.size} other sample(s), e.g. sample {bad[:3].tolist()}")
    expect(bool((lengths > 0).all()), DataFormatError,
           f"{source}: expected at least one real token per sample ([CLS]), got an all-zero mask")
    return lengths


def parse_edges(text: str | None, max_len: int) -> tuple[int, ...] | None:
    """`tight` (or empty) -> None; else a comma/space-separated increasing list ending at max_len."""
    if text is None or text.strip().lower() in ("", "tight"):
        return TIGHT
    try:
        edges = tuple(int(part) for part in text.replace(",", " ").split())
    except ValueError:
        raise UsageError(f"expected bucket edges such as '16,32,48,64' or 'tight', got {text!r}") from None
    expect(bool(edges) and edges[0] > 0 and all(a < b for a, b in zip(edges, edges[1:])), UsageError,
           f"expected strictly increasing positive bucket edges, got {text!r}")
    expect(edges[-1] == max_len, UsageError,
           f"expected the last bucket edge to be the sequence length {max_len}, got {edges[-1]}")
    return edges


def bucket_length(longest: int, edges: tuple[int, ...] | None) -> int:
    if edges is TIGHT:
        return int(longest)
    for edge in edges:
        if edge >= longest:
            return edge
    raise UsageError(f"expected bucket edges up to at least {longest} tokens, got {edges}")


def plan_batches(lengths: np.ndarray, batch_size: int, edges: tuple[int, ...] | None = TIGHT) -> list[Batch]:
    """Batches of up to `batch_size` samples of similar length, every sample exactly once; with gear edges
    a batch never straddles two buckets, so each runs at its own gear."""
    expect(batch_size > 0, UsageError, f"expected a positive batch size, got {batch_size}")
    order = np.argsort(lengths, kind="stable")
    if edges is TIGHT:
        groups = [order]
    else:
        gear = np.asarray([bucket_length(n, edges) for n in lengths[order]])
        groups = [order[gear == edge] for edge in edges if (gear == edge).any()]
    batches = []
    for group in groups:
        for start in range(0, len(group), batch_size):
            indices = group[start:start + batch_size]
            batches.append(Batch(indices, bucket_length(int(lengths[indices].max()), edges)))
    return batches


def split_calls(batches: list[Batch], lengths: np.ndarray, max_tokens: int | None,
                edges: tuple[int, ...] | None = TIGHT) -> list[Batch]:
    """Each length-sorted batch as calls of at most `max_tokens` positions (rows x padded length, one row at
    least), each trimmed to its longest sample: larger calls outgrow the caches. None or 0: whole batches."""
    if not max_tokens:
        return batches
    calls = []
    for batch in batches:
        start = 0
        for stop in range(1, len(batch.indices) + 1):
            longest = bucket_length(int(lengths[batch.indices[start:stop]].max()), edges)
            if not call_fits(stop - start, longest, max_tokens):
                calls.append(_call(batch.indices[start:stop - 1], lengths, edges))
                start = stop - 1
        calls.append(_call(batch.indices[start:], lengths, edges))
    return calls


def call_fits(rows: int, length: int, max_tokens: int | None) -> bool:
    """The call budget, once: `rows` x padded `length` within `max_tokens` (None or 0: any), one row always."""
    return not max_tokens or rows <= 1 or rows * length <= max_tokens


def _call(indices: np.ndarray, lengths: np.ndarray, edges) -> Batch:
    return Batch(indices, bucket_length(int(lengths[indices].max()), edges))


def consecutive_batches(count: int, batch_size: int, length: int) -> list[Batch]:
    """The model card's batches: samples in file order, every batch at the full length."""
    return [Batch(np.arange(start, min(start + batch_size, count)), length) for start in range(0, count, batch_size)]


def plan(arrays, batch_size: int, model_seq_len: int | None = None, model_batch_size: int | None = None,
         bucket_edges: str | None = CARD_BATCHES, source: str = "input_mask",
         call_tokens: int | None = None, full_only: bool = False) -> tuple[list[Batch], int | None]:
    """The calls in the order they run and the size to fill them to (None: no filler): the card's batches for a
    static model or "off", else length-bucketed ones split by `call_tokens`; `full_only`: full batches only."""
    count, seq_len = arrays[0].shape
    if model_seq_len is not None or bucket_edges == CARD_BATCHES:
        return _full(consecutive_batches(count, batch_size, seq_len), batch_size, full_only), model_batch_size
    lengths = real_lengths(arrays[2], source)
    return plan_lengths(lengths, batch_size, seq_len, bucket_edges, call_tokens, full_only), None


def plan_lengths(lengths: np.ndarray, batch_size: int, seq_len: int, bucket_edges: str | None = TIGHT,
                 call_tokens: int | None = None, full_only: bool = False) -> list[Batch]:
    """`plan`'s length-bucketed calls from the samples' real lengths alone (no inputs gathered)."""
    edges = parse_edges(bucket_edges, seq_len)
    batches = _full(plan_batches(lengths, batch_size, edges), batch_size, full_only)
    return split_calls(batches, lengths, call_tokens, edges)


def _full(batches: list[Batch], batch_size: int, full_only: bool) -> list[Batch]:
    if not full_only:
        return batches
    return [b for b in batches if len(b.indices) == batch_size] or batches[:1]


def batch_shapes(batches: list[Batch]) -> list[tuple[int, int]]:
    """The distinct (rows, length) of a plan's calls: what a runtime that compiles per shape compiles."""
    return sorted({(len(b.indices), int(b.length)) for b in batches})


def rows_per_call(batches: list[Batch], fill_to: int | None = None) -> float:
    """The mean rows a call computes (filler rows included): ais_bench's batchsize.mean."""
    return float(np.mean([fill_to or len(b.indices) for b in batches])) if batches else 0.0


def tokens_processed(batches: list[Batch], fill_to: int | None = None) -> int:
    """Positions the model computes, filler rows included when a fixed batch size is filled."""
    return sum(b.length * (fill_to or len(b.indices)) for b in batches)


# ---------------------------------------------------------------- running

def batch_inputs(arrays, batch: Batch, fill_to: int | None = None) -> list[np.ndarray]:
    """The batch's rows trimmed to its length; with `fill_to`, filled with copies of its first row
    (as ais_bench fills a static model's last batch; the filler outputs are dropped)."""
    rows = batch.indices
    if fill_to is not None and len(rows) < fill_to:
        rows = np.concatenate([rows, np.repeat(rows[:1], fill_to - len(rows))])
    return [np.ascontiguousarray(array[rows, :batch.length]) for array in arrays]


def run_batches(run, arrays, batches: list[Batch], fill_to: int | None = None, on_batch=None, requests: int = 1):
    """Logits `[N, 2]` in sample order and each call's compute time in ms, with `requests` calls in flight (`run`
    thread-safe when more); `on_batch(batch, logits)` sees each batch's rows in order on the calling thread."""
    owner = getattr(run, "__self__", None)  # a bound `run` of a runtime that stages its own calls gets the pass
    if requests == 1 and isinstance(owner, PipelinedRuntime):
        return run_batches_pipelined(owner, arrays, batches, fill_to, on_batch)

    def call(batch):
        inputs = batch_inputs(arrays, batch, fill_to)
        tick = time.perf_counter()
        out = run(*inputs)
        return out, (time.perf_counter() - tick) * 1000.0

    logits = None
    compute_ms = []
    for batch, (out, ms) in zip(batches, in_flight(call, batches, requests)):
        compute_ms.append(ms)
        if logits is None:
            logits = np.empty((len(arrays[0]), out.shape[1]), dtype=out.dtype)
        logits[batch.indices] = out[:len(batch.indices)]
        if on_batch is not None:
            on_batch(batch, out[:len(batch.indices)])
    return logits, compute_ms


def run_batches_pipelined(runtime: PipelinedRuntime, arrays, batches: list[Batch], fill_to: int | None = None,
                          on_batch=None):
    """As `run_batches`, the runtime gathering each call from the whole arrays itself; a call's time is the wait
    from the previous call's logits to its own (calls overlap, so no single call's compute time exists)."""
    found = {"logits": None}
    compute_ms = []
    last = [time.perf_counter()]

    def on_output(position, out):
        if found["logits"] is None:
            found["logits"] = np.empty((len(arrays[0]), out.shape[1]), dtype=out.dtype)
        logits = found["logits"]
        now = time.perf_counter()
        compute_ms.append((now - last[0]) * 1000.0)
        last[0] = now
        batch = batches[position]
        logits[batch.indices] = out[:len(batch.indices)]
        if on_batch is not None:
            on_batch(batch, out[:len(batch.indices)])

    runtime.run_calls(arrays, [(_filled(b.indices, fill_to), b.length) for b in batches], on_output)
    return found["logits"], compute_ms


def _filled(rows: np.ndarray, fill_to: int | None) -> np.ndarray:
    if fill_to is not None and len(rows) < fill_to:
        return np.concatenate([rows, np.repeat(rows[:1], fill_to - len(rows))])
    return rows


def in_flight(call, items, requests: int = 1):
    """`call(item)` for each item, results in item order, up to `requests` running at once on worker threads
    (a few more queued, so the caller's work overlaps); ONNX Runtime and OpenVINO release the GIL."""
    expect(requests > 0, UsageError, f"expected a positive number of requests in flight, got {requests}")
    if requests == 1:
        yield from map(call, items)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(requests, thread_name_prefix="request") as pool:
        pending = deque()
        try:
            for item in items:
                pending.append(pool.submit(call, item))
                if len(pending) > 2 * requests:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # stopped early (an error, or the caller gave up): queued calls are not started
            for future in pending:
                future.cancel()


def resolve_requests(requests: int | str | None, threads: int) -> int:
    """REQUESTS: `auto` (or None) is one request in flight per thread, each on one thread (faster than one on all
    threads: docs/measurements/benchmark-amd-2vcpu.md); else the number given."""
    if requests is None or str(requests).strip().lower() in ("", "auto"):
        return max(1, threads)
    try:
        count = int(requests)
    except (TypeError, ValueError):
        raise UsageError(f"expected REQUESTS 'auto' or a positive integer, got {requests!r}") from None
    expect(count > 0, UsageError, f"expected REQUESTS 'auto' or a positive integer, got {requests!r}")
    return count


def run_batches_overlapped(runtime: OverlappedRuntime, arrays, batches: list[Batch]):
    """As `run_batches` for a runtime with its own queue (`run_overlapped`): logits in sample order and, per batch,
    the pass's wall time divided by the batches, since no single call's compute time exists."""
    logits = np.empty((len(arrays[0]), 2), dtype=np.float32)

    def on_output(position, out):
        logits[batches[position].indices] = out[:len(batches[position].indices)]

    tick = time.perf_counter()
    runtime.run_overlapped((batch_inputs(arrays, b) for b in batches), on_output)
    per_batch = (time.perf_counter() - tick) * 1000.0 / max(1, len(batches))
    return logits, [per_batch] * len(batches)


def model_logits(runtime: Runtime, arrays, batch_size: int, bucket_edges: str | None = CARD_BATCHES) -> np.ndarray:
    """Logits of every sample, batched as `plan` decides for this runtime's model."""
    batches, fill_to = plan(arrays, batch_size, runtime.seq_len, runtime.batch_size, bucket_edges)
    return run_batches(runtime.run, arrays, batches, fill_to, requests=runtime.requests)[0]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of logits rows, in float64."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- ais_bench's figures

def throughput(batch_size: float, compute_ms: list[float]) -> float:
    """ais_bench's figure: 1000 * mean batch size of the calls / mean compute time per call (ms); 0.0
    when nothing was timed (JSON has no infinity)."""
    mean = float(np.mean(compute_ms)) if len(compute_ms) else 0.0
    return 1000.0 * batch_size / mean if mean > 0 else 0.0


def throughput_line(batch_size: float, compute_ms: list[float]) -> str:
    mean = float(np.mean(compute_ms)) if len(compute_ms) else 0.0
    shown = int(batch_size) if float(batch_size).is_integer() else round(batch_size, 3)
    return (f"[INFO] throughput 1000*batchsize.mean({shown})/NPU_compute_time.mean"
            f"({mean}): {throughput(batch_size, compute_ms)}")


def wall_clock_line(samples: int, wall_s: float, requests: int = 1) -> str:
    """The pass's own figure, beside ais_bench's: with several requests in flight their compute times
    overlap, so 1000 * batchsize / mean time per call understates what the pass achieved."""
    rate = samples / wall_s if wall_s > 0 else 0.0
    overlap = (f"; {requests} requests in flight, so the per-call times above overlap and the formula "
               "understates it") if requests > 1 else ""
    return f"[INFO] wall clock: {samples} samples in {wall_s:.3f} s = {rate:.1f} samples/s{overlap}"


def latency_stats(values_ms: list[float]) -> dict:
    values = np.asarray(values_ms, dtype=np.float64) if len(values_ms) else np.zeros(1)
    return {"min": float(values.min()), "max": float(values.max()), "mean": float(values.mean()),
            "median": float(np.median(values)), "percentile(99%)": float(np.percentile(values, 99)),
            "count": len(values_ms)}
