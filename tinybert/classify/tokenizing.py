"""Reading, parsing and tokenizing classify's chunks ahead of the model: on one thread of this process (the tokenizer
spreading each batch over its own threads) or on a pool of processes with a tokenizer each, the same features."""

from __future__ import annotations

import contextlib
import functools
import itertools
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from tinybert.classify.corpus import BAD_EXAMPLES, ChunkSpec, Layout, ParsedChunk, parse_chunk, read_chunk
from tinybert.data.features import FEATURE_DTYPE, Features, encode_sentences, load_wordpiece_tokenizer
from tinybert.errors import UsageError, expect
from tinybert.settings import TOKENIZE_AHEAD

AUTO = "auto"  # TOKENIZE_WORKERS: the tokenizer's own threads, in this process
PARENT_POLL_S = 0.5  # how often a pool process checks that the run that started it is still alive
SERIAL = {"TOKENIZERS_PARALLELISM": "false"}  # one thread per tokenizer: the processes are the parallelism


@dataclass(frozen=True)
class TokenizeJob:
    """What tokenizing a chunk needs, picklable and light (a pool process imports no model code)."""

    input_path: str
    layout: Layout
    vocab_file: str
    seq_len: int


@dataclass
class PreparedChunk:
    spec: ChunkSpec
    parsed: ParsedChunk
    features: Features | None  # None when no line of the chunk was usable


def tokenize_processes(value) -> int | None:
    """TOKENIZE_WORKERS: None for `auto` (the tokenizer's threads in this process), else that many processes."""
    text = str(value).strip().lower()
    if text in ("", AUTO):
        return None
    expect(text.isdigit() and int(text) > 0, UsageError,
           f"expected TOKENIZE_WORKERS auto or a positive number of processes, got {value!r}")
    return int(text)


def prepare_chunk(job: TokenizeJob, spec: ChunkSpec, tokenizer=None) -> PreparedChunk:
    """Read, parse and tokenize one chunk here (`tokenizer`: load_wordpiece_tokenizer's, kept across chunks)."""
    return tokenize_lines(job, read_chunk(job.input_path, spec), spec, tokenizer)


def tokenize_lines(job: TokenizeJob, raw: bytes, spec: ChunkSpec, tokenizer=None) -> PreparedChunk:
    """Parse and tokenize the lines `raw` of `spec` (a chunk, or a pool process's piece of one)."""
    parsed = parse_chunk(raw, spec, job.layout)
    features = None
    if parsed.sentences:
        features = encode_sentences(parsed.sentences, job.vocab_file, job.seq_len, tokenizer=tokenizer)
    return PreparedChunk(spec, parsed, features)


# ---------------------------------------------------------------- features through a pipe

def pack(prepared: PreparedChunk) -> tuple:
    """The chunk with its features as narrow token ids and lengths (segments are zeros, masks follow from lengths):
    a fraction of the int64 arrays' bytes through a pipe or Ray's object store."""
    if prepared.features is None:
        return prepared.spec, prepared.parsed, None, None
    ids, lengths = prepared.features.input_ids, prepared.features.lengths
    narrow = np.uint16 if int(ids.max(initial=0)) <= np.iinfo(np.uint16).max else np.int32
    return prepared.spec, prepared.parsed, ids.astype(narrow), lengths


def features_of(ids: np.ndarray, lengths: np.ndarray, seq_len: int) -> Features:
    """The int64 features `encode_sentences` wrote, rebuilt from `pack`'s ids and lengths."""
    input_ids = np.zeros((len(ids), seq_len), dtype=FEATURE_DTYPE)
    input_ids[:, :ids.shape[1]] = ids
    mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(FEATURE_DTYPE)
    return Features(input_ids, np.zeros_like(input_ids), mask)


def unpack(packed: tuple, seq_len: int) -> PreparedChunk:
    spec, parsed, ids, lengths = packed
    return PreparedChunk(spec, parsed, None if ids is None else features_of(ids, lengths, seq_len))


def merge(spec: ChunkSpec, pieces: list[tuple], layout: Layout, seq_len: int) -> PreparedChunk:
    """One chunk from the packed pieces of its lines, in order: what `prepare_chunk` gives for the whole chunk."""
    parsed = ParsedChunk(labels=[] if layout.label is not None else None)
    ids, lengths = [], []
    for _, part, part_ids, part_lengths in pieces:
        parsed.sentences += part.sentences
        parsed.indices += part.indices
        if parsed.labels is not None:
            parsed.labels += part.labels
        parsed.bad += part.bad
        parsed.bad_examples += part.bad_examples
        if part_ids is not None:
            ids.append(part_ids)
            lengths.append(part_lengths)
    parsed.bad_examples = parsed.bad_examples[:BAD_EXAMPLES]
    features = features_of(np.concatenate(ids), np.concatenate(lengths), seq_len) if ids else None
    return PreparedChunk(spec, parsed, features)


def split_lines(raw: bytes, spec: ChunkSpec, parts: int) -> list[ChunkSpec]:
    """The chunk as up to `parts` runs of whole lines, in order (no checksum: the chunk's own was checked)."""
    ends = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == ord("\n")) + 1  # after each newline
    per = max(1, -(-spec.lines // max(1, parts)))
    pieces = []
    for first in range(0, spec.lines, per):
        last = min(first + per, spec.lines)
        start = int(ends[first - 1]) if first else 0
        end = int(ends[last - 1]) if last <= len(ends) else len(raw)  # the file's last line may have no newline
        pieces.append(replace(spec, first_line=spec.first_line + first, lines=last - first, start=spec.start + start,
                              end=spec.start + end, sha256=""))
    return pieces


# ---------------------------------------------------------------- a pool process

_worker: dict = {}


def _start_worker(job: TokenizeJob, parent: int) -> None:
    """A pool process: one tokenizer on one thread, Ctrl-C left to the run, gone as soon as the run is."""
    os.environ.update(SERIAL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker.update(job=job, tokenizer=load_wordpiece_tokenizer(job.vocab_file))
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="parent-watch").start()


def _exit_with(parent: int) -> None:
    """A SIGKILLed run leaves its pool processes behind: each ends itself once its parent is gone."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _ready() -> int:
    return os.getpid()


def _tokenize_piece(raw: bytes, piece: ChunkSpec) -> tuple:
    return pack(tokenize_lines(_worker["job"], raw, piece, _worker["tokenizer"]))


# ---------------------------------------------------------------- the two routes

class ThreadTokenizing:
    """TOKENIZE_WORKERS=auto: one thread prepares each chunk in turn; the tokenizer's encode_batch spreads the
    sentences over its own threads (all cores)."""

    route = "threads"
    workers = None

    def __init__(self, prepare, threads: int = 1):
        self._prepare = prepare
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="tokenize")

    def start(self) -> None:
        pass

    def submit(self, spec: ChunkSpec) -> Future:
        return self._pool.submit(self._prepare, spec)

    def describe(self) -> str:
        return "the tokenizer's own threads in this process"

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ProcessTokenizing(ThreadTokenizing):
    """TOKENIZE_WORKERS=N: this process reads each chunk and cuts it into N runs of lines, which N processes parse
    and tokenize (one tokenizer thread each); the pieces come back as `pack`s and are merged in order."""

    route = "processes"

    def __init__(self, job: TokenizeJob, workers: int, ahead: int = TOKENIZE_AHEAD):
        self.job, self.workers = job, workers
        self._processes = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                              initializer=_start_worker, initargs=(job, os.getpid()))
        super().__init__(self._prepare_chunk, threads=max(1, ahead))  # a thread per chunk in flight: none waits

    def start(self) -> None:
        """Start every process now (a spawn imports numpy and the tokenizer), before any clock starts."""
        for future in [self._processes.submit(_ready) for _ in range(self.workers)]:
            future.result()

    def _prepare_chunk(self, spec: ChunkSpec) -> PreparedChunk:
        raw = read_chunk(self.job.input_path, spec)
        futures = [self._processes.submit(_tokenize_piece, raw[p.start - spec.start:p.end - spec.start], p)
                   for p in split_lines(raw, spec, self.workers)]
        try:
            return merge(spec, [future.result() for future in futures], self.job.layout, self.job.seq_len)
        finally:
            for future in futures:
                future.cancel()

    def describe(self) -> str:
        return f"{self.workers} process(es) with a tokenizer each"

    def close(self) -> None:
        super().close()
        self._processes.shutdown(wait=True, cancel_futures=True)


def open_tokenizing(job: TokenizeJob, workers: int | None, prepare=None, ahead: int = TOKENIZE_AHEAD):
    """The route TOKENIZE_WORKERS names (`workers`: tokenize_processes'); `prepare` replaces prepare_chunk here."""
    if workers is None:
        if prepare is None:
            prepare = functools.partial(prepare_chunk, job, tokenizer=load_wordpiece_tokenizer(job.vocab_file))
        return ThreadTokenizing(prepare)
    return ProcessTokenizing(job, workers, ahead)


def in_order(tokenizing, specs, ahead: int):
    """Each chunk prepared, in order, with up to `ahead` more submitted while the caller works on it."""
    specs, upcoming = iter(specs), deque()
    try:
        upcoming.extend(tokenizing.submit(spec) for spec in itertools.islice(specs, ahead))
        while upcoming:
            prepared = upcoming.popleft().result()
            upcoming.extend(tokenizing.submit(spec) for spec in itertools.islice(specs, 1))
            yield prepared
    finally:  # stopped early (an error, Ctrl-C): chunks not started are not started
        for future in upcoming:
            future.cancel()


def tokenize_alone(job: TokenizeJob, specs: list[ChunkSpec], workers: int | None, ahead: int = TOKENIZE_AHEAD) -> dict:
    """Every chunk read, parsed and tokenized by the route, nothing else: the rate a GPU's model must hide behind."""
    sentences = 0
    with open_tokenizing(job, workers, ahead=ahead) as tokenizing:
        tokenizing.start()
        tick = time.perf_counter()
        with contextlib.closing(in_order(tokenizing, specs, ahead)) as chunks:
            for prepared in chunks:
                sentences += len(prepared.parsed.indices)
        wall = time.perf_counter() - tick
    return {"route": tokenizing.route, "workers": workers, "sentences": sentences, "wall_s": wall,
            "sentences_per_s": sentences / wall if wall > 0 else 0.0}
