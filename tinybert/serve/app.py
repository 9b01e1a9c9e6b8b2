"""The HTTP API, TEI-compatible: POST /predict, GET /health, /info and /metrics as a FastAPI app over an Engine and
a TokenBatcher; every refusal is TEI's status and body {"error", "error_type"}, and the server stays up."""

from __future__ import annotations

import asyncio
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
from fastapi import Request  # module-level: FastAPI resolves the handlers' annotations here

from tinybert import LABEL_NAMES
from tinybert.errors import ServeRequestError
from tinybert.serve.batcher import TokenBatcher
from tinybert.serve.metrics import Metrics
from tinybert.settings import (SERVE_MAX_BYTES, SERVE_MAX_INPUTS, SERVE_MAX_QUEUED, SERVE_RETRY_AFTER,
                               SERVE_WAIT_MS)

TOKENIZE_THREADS = 2  # requests tokenized at once, beside the model's threads: off the model's critical path


@dataclass(frozen=True)
class Limits:
    """The settings a request is held to (the SERVE_* rows of the settings table)."""

    max_inputs: int = SERVE_MAX_INPUTS
    max_bytes: int = SERVE_MAX_BYTES
    max_queued: int = SERVE_MAX_QUEUED
    retry_after: int = SERVE_RETRY_AFTER
    wait_s: float = SERVE_WAIT_MS / 1000.0


class Server:
    """One replica's state: the engine, its batcher and metrics, and whether it is ready or draining (`drain_flag`:
    a file whose presence means draining, so the entry point can tell every Ray Serve replica at once)."""

    def __init__(self, engine, limits: Limits = Limits(), *, replica: str | None = None,
                 drain_flag: str | None = None, model_id: str = ""):
        self.engine, self.limits, self.drain_flag, self.model_id = engine, limits, drain_flag, model_id
        self.metrics = Metrics(replica)
        self.batcher = TokenBatcher(engine.run, budget_tokens=engine.budget_tokens, max_rows=engine.max_rows,
                                    wait_s=limits.wait_s, max_queued=limits.max_queued,
                                    concurrency=engine.concurrency, on_batch=self.metrics.batch)
        self.tokenize_pool: ThreadPoolExecutor | None = None
        self.ready = False
        self._draining = False
        self.warmed_shapes = 0

    def warm_up(self) -> None:
        """Every batch shape prepared (a GPU's graphs) and one call run, then ready."""
        self.warmed_shapes = self.engine.warm_up()
        encoded = self.engine.encode(["warm up"], truncate=True)
        self.engine.run(*(a[:, :encoded.longest] for a in encoded.arrays))
        self.ready = True

    def start(self) -> None:
        """On the app's event loop: the tokenizer threads and the batcher."""
        if self.tokenize_pool is None:
            self.tokenize_pool = ThreadPoolExecutor(TOKENIZE_THREADS, thread_name_prefix="tokenize")
        self.batcher.start()

    async def close(self) -> None:
        """Answer what was accepted, then let the threads go."""
        await self.batcher.close()
        if self.tokenize_pool is not None:
            self.tokenize_pool.shutdown(wait=True)
            self.tokenize_pool = None

    @property
    def draining(self) -> bool:
        return self._draining or bool(self.drain_flag and os.path.exists(self.drain_flag))

    def drain(self) -> None:
        """From now on /health says 503; requests keep being answered until the server stops."""
        self._draining = True

    def healthy(self) -> None:
        if not self.ready:
            raise ServeRequestError("Unhealthy", "expected a ready model, got one still loading")
        if self.draining:
            raise ServeRequestError("Unhealthy", "expected a serving replica, got one draining for shutdown")

    def info(self) -> dict:
        engine = self.engine
        return {"model_id": self.model_id, **engine.describe(), "model_type": {"classifier": {
                    "id2label": {str(k): name for k, name in enumerate(LABEL_NAMES)},
                    "label2id": {name: k for k, name in enumerate(LABEL_NAMES)}}},
                "max_input_length": engine.seq_len, "max_client_batch_size": self.limits.max_inputs,
                "payload_limit": self.limits.max_bytes, "max_concurrent_requests": self.limits.max_queued,
                "max_batch_tokens": engine.budget_tokens, "max_batch_requests": engine.max_rows,
                "batch_wait_ms": self.limits.wait_s * 1000.0, "model_threads": engine.concurrency,
                "tokenization_workers": TOKENIZE_THREADS, "warmed_shapes": self.warmed_shapes,
                "replica": self.metrics.replica, "ready": self.ready, "draining": self.draining,
                "served_sentences": _served(self.metrics)}


def _served(metrics: Metrics) -> int:
    from tinybert.serve.metrics import sample

    return int(sample(metrics.registry, "tinybert_sentences_total"))


# ---------------------------------------------------------------- the request's rules

def parse_inputs(body: bytes, max_inputs: int) -> tuple[list[str], bool, bool, bool]:
    """(texts, single, truncate, raw_scores) of a /predict body; ServeRequestError with TEI's type otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ServeRequestError("Tokenizer", f"expected a UTF-8 body, got byte 0x{body[exc.start]:02x} at "
                                             f"offset {exc.start}") from None
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ServeRequestError("Validation", f"expected a JSON body, got {exc.msg} at line {exc.lineno} "
                                              f"column {exc.colno}", status=400) from None
    if not isinstance(request, dict) or "inputs" not in request:
        raise ServeRequestError("Validation", f"expected a JSON object with `inputs`, got "
                                              f"{type(request).__name__}", status=422)
    flags = {}
    for name in ("truncate", "raw_scores"):
        value = request.get(name, False)
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise ServeRequestError("Validation", f"expected `{name}` true or false, got {value!r}", status=422)
        flags[name] = value
    inputs = request["inputs"]
    single = isinstance(inputs, str)
    items = [inputs] if single else inputs
    if not isinstance(items, list):
        raise ServeRequestError("Validation", f"expected `inputs` a string or a list, got {type(items).__name__}",
                                status=422)
    if not items:
        raise ServeRequestError("Empty", "expected `inputs` with at least one sentence, got an empty list")
    if len(items) > max_inputs:
        raise ServeRequestError("Validation", f"expected at most {max_inputs} inputs (max_client_batch_size), got "
                                              f"{len(items)}")
    texts = [_sentence(item, position) for position, item in enumerate(items)]
    return texts, single, flags["truncate"], flags["raw_scores"]


def _sentence(item, position: int) -> str:
    if isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item):
        raise ServeRequestError("Tokenizer", f"expected one sentence per input for this single-sentence model, got "
                                             f"a sentence pair at position {position}")
    if isinstance(item, list) and len(item) == 1:
        item = item[0]
    if not isinstance(item, str):
        raise ServeRequestError("Validation", f"expected a string (or a list of one) at position {position}, got "
                                              f"{type(item).__name__}", status=422)
    if not item.strip():
        raise ServeRequestError("Empty", f"expected a non-empty sentence, got an empty one at position {position}")
    try:
        item.encode("utf-8")
    except UnicodeEncodeError:
        raise ServeRequestError("Tokenizer", f"expected valid Unicode text, got a lone surrogate at position "
                                             f"{position}") from None
    return item


def scores(logits: np.ndarray, raw_scores: bool) -> list[list[dict]]:
    """Per row, [{"score", "label"}] best first: probabilities, or the logits themselves with `raw_scores`."""
    if not np.isfinite(logits).all():
        raise ServeRequestError("Backend", "expected finite logits from the model, got NaN or infinity")
    from tinybert.runtimes.runner import softmax

    values = np.asarray(logits, dtype=np.float64) if raw_scores else softmax(np.asarray(logits, dtype=np.float64))
    out = []
    for row in values:
        order = np.argsort(-row, kind="stable")
        out.append([{"score": float(row[k]), "label": LABEL_NAMES[k]} for k in order])
    return out


# ---------------------------------------------------------------- the app

def error_response(exc: ServeRequestError, retry_after: int):
    from fastapi.responses import JSONResponse

    headers = {"Retry-After": str(retry_after)} if exc.error_type == "Overloaded" else None
    return JSONResponse({"error": str(exc), "error_type": exc.error_type}, status_code=exc.status, headers=headers)


async def read_body(request, max_bytes: int) -> bytes:
    """The body, refused (413) past `max_bytes` before more of it is read."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ServeRequestError("Validation", f"expected a body of at most {max_bytes} bytes (payload_limit), got "
                                              f"{declared}")
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > max_bytes:
            raise ServeRequestError("Validation", f"expected a body of at most {max_bytes} bytes (payload_limit), "
                                                  f"got more")
        parts.append(part)
    return b"".join(parts)


def create_app(server: Server):
    """The FastAPI app of one replica; its lifespan starts and stops the batcher."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response

    @asynccontextmanager
    async def lifespan(app):
        server.start()
        yield
        await server.close()

    app = FastAPI(title="TinyBERT SST-2 classifier (TEI-compatible)", lifespan=lifespan)
    limits, metrics = server.limits, server.metrics

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc):  # FastAPI's own checks: TEI's body shape, never a bare 422 or a 500
        return JSONResponse({"error": f"expected a valid request, got {exc.errors()[:1]}", "error_type": "Validation"},
                            status_code=422)

    @app.post("/predict")
    async def predict(request: Request):
        tick = time.perf_counter()
        try:
            if not server.ready:
                server.healthy()
            texts, single, truncate, raw_scores = parse_inputs(await read_body(request, limits.max_bytes),
                                                               limits.max_inputs)
            loop = asyncio.get_running_loop()
            try:
                encoded = await loop.run_in_executor(server.tokenize_pool, server.engine.encode, texts, truncate)
            except ServeRequestError:
                raise
            except Exception as exc:
                raise ServeRequestError("Tokenizer", f"expected text the tokenizer takes, got "
                                                     f"{type(exc).__name__}: {exc}") from None
            metrics.in_flight.labels(metrics.replica).inc()
            try:
                metrics.queue.labels(metrics.replica).set(server.batcher.queued + 1)
                logits = await server.batcher.submit(encoded.arrays, encoded.longest)
            finally:
                metrics.in_flight.labels(metrics.replica).dec()
                metrics.queue.labels(metrics.replica).set(server.batcher.queued)
            body = scores(logits, raw_scores)
        except ServeRequestError as exc:
            metrics.answered(exc.status, exc.error_type, time.perf_counter() - tick)
            return error_response(exc, limits.retry_after)
        metrics.sentences.labels(metrics.replica).inc(len(texts))
        metrics.answered(200, "", time.perf_counter() - tick)
        return JSONResponse(body[0] if single else body)

    @app.get("/health")
    async def health():
        try:
            server.healthy()
        except ServeRequestError as exc:
            return error_response(exc, limits.retry_after)
        return Response(status_code=200)

    @app.get("/info")
    async def info():
        return server.info()

    @app.get("/metrics")
    async def metrics_text():
        return Response(metrics.text(), media_type="text/plain; version=0.0.4")

    return app
