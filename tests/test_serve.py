"""The server without Ray, through FastAPI's TestClient: TEI's shapes, every refusal's status and body, raw scores equal
to the Classifier's logits, batches closing by token budget and by wait, a burst past the queue getting only 429s
and recovering, and /health turning 503 while draining."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest

from tinybert.errors import ServeRequestError
from tinybert.serve.app import Limits, Server, create_app
from tinybert.serve.batcher import TokenBatcher
from tinybert.serve.metrics import sample

SEQ_LEN = 16


class FakeEngine:
    """Words as tokens; logits (-n, n) for n real tokens; `gate` holds each call until set; `fail` raises."""

    seq_len, whole_batches, max_rows, budget_tokens, concurrency = SEQ_LEN, False, 8, 64, 1

    def __init__(self, gate: threading.Event | None = None, fail: bool = False):
        self.gate, self.fail, self.shapes = gate, fail, []

    def describe(self) -> dict:
        return {"runtime": "fake", "model": "none", "path": None, "backend": "fake", "choice": "fake"}

    def encode(self, texts, truncate):
        from tinybert.serve.engine import Encoded

        lengths = [len(t.split()) + 2 for t in texts]
        if not truncate and max(lengths) > SEQ_LEN:
            raise ServeRequestError("Validation", "expected at most 16 tokens, got more")
        lengths = [min(n, SEQ_LEN) for n in lengths]
        mask = (np.arange(SEQ_LEN)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
        return Encoded((mask * 7, np.zeros_like(mask), mask), max(lengths))

    def run(self, ids, segments, mask):
        self.shapes.append(ids.shape)
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise RuntimeError("device lost")
        n = mask.sum(axis=1).astype(np.float32)
        return np.stack([-n, n], axis=1)

    def warm_up(self) -> int:
        return 0


def _client(engine=None, ready=True, **limits):
    from fastapi.testclient import TestClient

    server = Server(engine or FakeEngine(), Limits(**{"max_inputs": 4, "max_bytes": 2000, "max_queued": 4,
                                                      "retry_after": 3, "wait_s": 0.001, **limits}))
    if ready:
        server.warm_up()
    return server, TestClient(create_app(server))


def _error(response, status, error_type):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_type"] == error_type and set(body) == {"error", "error_type"} and body["error"]


def test_predict_gives_tei_shapes_best_first():
    server, client = _client()
    with client:
        one = client.post("/predict", json={"inputs": "a good film"}).json()
        assert [s["label"] for s in one] == ["positive", "negative"]
        assert one[0]["score"] == pytest.approx(1 / (1 + np.exp(-10.0)))  # softmax of (-5, 5)
        many = client.post("/predict", json={"inputs": ["a", [["b c"]][0], "d e f"], "raw_scores": True}).json()
        assert [row[0]["score"] for row in many] == [3.0, 4.0, 5.0] and len(many) == 3
        assert client.get("/health").status_code == 200
        info = client.get("/info").json()
        assert info["max_client_batch_size"] == 4 and info["max_input_length"] == SEQ_LEN
        assert info["model_type"]["classifier"]["id2label"] == {"0": "negative", "1": "positive"}
        assert info["served_sentences"] == 4
        text = client.get("/metrics").text
        assert "tinybert_requests_total{" in text and "tinybert_batch_size_bucket" in text


@pytest.mark.parametrize("body, status, error_type", [
    ({"inputs": ""}, 400, "Empty"),
    ({"inputs": []}, 400, "Empty"),
    ({"inputs": ["a", "  "]}, 400, "Empty"),
    ({"inputs": ["a"] * 5}, 413, "Validation"),
    ({"inputs": "w " * 20}, 413, "Validation"),
    ({"inputs": [["a sentence", "its pair"]]}, 422, "Tokenizer"),
    ({"inputs": "\ud800 lone"}, 422, "Tokenizer"),
    ({"inputs": 3}, 422, "Validation"),
    ({"inputs": [3]}, 422, "Validation"),
    ({"text": "no inputs"}, 422, "Validation"),
    ({"inputs": "a", "truncate": "yes"}, 422, "Validation"),
], ids=["empty", "empty-list", "blank", "too-many", "too-long", "pair", "surrogate", "number", "number-in-list",
        "no-inputs", "bad-flag"])
def test_each_refusal_has_tei_s_status_and_body(body, status, error_type):
    server, client = _client()
    with client:
        _error(client.post("/predict", content=json.dumps(body)), status, error_type)
        assert client.post("/predict", json={"inputs": "still up"}).status_code == 200
        assert sample(server.metrics.registry, "tinybert_requests_total", status=str(status),
                      error_type=error_type) == 1


@pytest.mark.parametrize("content, status, error_type", [
    (b'{"inputs": "caf\xe9"}', 422, "Tokenizer"),  # Latin-1, not UTF-8
    (b'{"inputs": ', 400, "Validation"),
    (b"[1, 2]", 422, "Validation"),
    (b'{"inputs": "' + b"x" * 3000 + b'"}', 413, "Validation"),
], ids=["not-utf8", "malformed", "not-an-object", "too-big"])
def test_bytes_the_parser_refuses_are_4xx_in_the_same_shape(content, status, error_type):
    server, client = _client()
    with client:
        _error(client.post("/predict", content=content, headers={"content-type": "application/json"}), status,
               error_type)


def test_truncate_takes_a_long_sentence():
    server, client = _client()
    with client:
        scores = client.post("/predict", json={"inputs": "w " * 20, "truncate": True, "raw_scores": True}).json()
        assert scores[0] == {"score": float(SEQ_LEN), "label": "positive"}


def test_a_backend_failure_is_424_and_the_server_goes_on():
    engine = FakeEngine()
    server, client = _client(engine)
    with client:
        engine.fail = True
        _error(client.post("/predict", json={"inputs": "a"}), 424, "Backend")
        engine.fail = False
        assert client.post("/predict", json={"inputs": "a"}).status_code == 200


def test_not_ready_and_draining_are_503():
    server, client = _client(ready=False)
    with client:
        _error(client.get("/health"), 503, "Unhealthy")
        _error(client.post("/predict", json={"inputs": "a"}), 503, "Unhealthy")
        server.warm_up()
        assert client.get("/health").status_code == 200
        server.drain()
        _error(client.get("/health"), 503, "Unhealthy")
        assert client.post("/predict", json={"inputs": "answered while draining"}).status_code == 200
        assert client.get("/info").json()["draining"] is True


def test_a_burst_past_the_queue_gets_only_429s_then_recovers():
    gate, engine = threading.Event(), FakeEngine()
    engine.max_rows = 1  # one request per batch: the queue fills behind the held call
    server, client = _client(engine)
    engine.gate = gate  # after the warm-up's call
    with client:
        answers = []
        held = [threading.Thread(target=lambda: answers.append(client.post("/predict", json={"inputs": "a"})))
                for _ in range(5)]  # one running, four queued
        for thread in held:
            thread.start()
        deadline = time.monotonic() + 5
        while server.batcher.queued < 4 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert server.batcher.queued == 4
        burst = [client.post("/predict", json={"inputs": "b"}) for _ in range(6)]
        for response in burst:
            _error(response, 429, "Overloaded")
            assert response.headers["retry-after"] == "3"
        gate.set()
        for thread in held:
            thread.join(5)
        assert [r.status_code for r in answers] == [200] * 5
        assert client.post("/predict", json={"inputs": "after"}).status_code == 200


def _batches(wait_s, requests, budget=64, max_rows=8):
    """The (rows, longest, reason) of each batch when `requests` (rows, longest) arrive together."""
    seen = []

    def run(ids, segments, mask):
        return np.zeros((len(ids), 2), dtype=np.float32)

    async def main():
        batcher = TokenBatcher(run, budget_tokens=budget, max_rows=max_rows, wait_s=wait_s, max_queued=100,
                               on_batch=seen.append)
        tick = time.monotonic()
        await asyncio.gather(*[batcher.submit(tuple(np.ones((rows, longest), np.int64) for _ in range(3)), longest)
                               for rows, longest in requests])
        await batcher.close()
        return time.monotonic() - tick

    return seen, asyncio.run(main())


def test_a_batch_closes_before_rows_x_longest_passes_the_budget():
    seen, seconds = _batches(0.3, [(2, 10), (2, 12), (2, 16), (1, 4)])
    assert [(s.rows, s.longest, s.reason) for s in seen] == [(4, 12, "budget"), (3, 16, "wait")]
    seen, _ = _batches(0.3, [(1, 4)] * 10)  # short rows: the rows limit closes the first
    assert [(s.rows, s.reason) for s in seen] == [(8, "rows"), (2, "wait")]


def test_a_lone_request_leaves_after_the_wait():
    seen, seconds = _batches(0.05, [(1, 5)])
    assert [(s.rows, s.reason) for s in seen] == [(1, "wait")] and 0.05 <= seconds < 2


def test_raw_scores_equal_the_classifier_s_logits(small_inputs, small_fast_models, tmp_path):
    from conftest import copy_models
    from fastapi.testclient import TestClient

    from tinybert.data.dataset import read_sst2_tsv
    from tinybert.serve.engine import Engine

    engine = Engine.open(str(small_inputs.checkpoint), model_dir=str(copy_models(small_fast_models, tmp_path)),
                         ort_model="fast",
                         backend="onnxruntime")
    server = Server(engine, Limits(max_inputs=8))
    server.warm_up()
    sentences = read_sst2_tsv(str(small_inputs.tsv)).sentences
    expected = engine.classifier.logits(sentences)
    got = []
    with TestClient(create_app(server)) as client:
        for start in range(0, len(sentences), 8):
            rows = client.post("/predict", json={"inputs": sentences[start:start + 8], "raw_scores": True,
                                                 "truncate": True}).json()
            got += [{s["label"]: s["score"] for s in row} for row in rows]
    engine.close()
    np.testing.assert_allclose([[g["negative"], g["positive"]] for g in got], expected, atol=1e-5)


def test_a_gpu_path_warms_every_batch_shape_before_ready():
    """On a path that runs whole batches (a GPU's graph replays) every (rows, length) a batch can take is prepared
    before the server says ready; a CPU path prepares none."""
    from types import SimpleNamespace

    from tinybert.serve.engine import Engine

    asked = []
    runtime = SimpleNamespace(requests=1, seq_len=None, warm_up=lambda shapes: asked.extend(shapes) or 1.5)
    classifier = SimpleNamespace(seq_len=64, call_tokens=0, batch_size=16, runtime=runtime)
    engine = Engine(classifier)
    assert engine.warm_up() == 16 * 8 and engine.budget_tokens == 16 * 64
    assert set(asked) == {(rows, length) for rows in range(1, 17) for length in range(8, 65, 8)}
    cpu = Engine(SimpleNamespace(seq_len=64, call_tokens=512, batch_size=64, runtime=runtime))
    assert cpu.warm_up() == 0 and cpu.budget_tokens == 512


def test_serve_load_s_command_line_reaches_the_load_and_saves_its_report(small_inputs, tmp_path, monkeypatch):
    """The load itself runs against a real server in tests/test_serve_ray.py; here what the command line hands it."""
    from conftest import cli

    from tinybert.serve import load
    from tinybert.settings import SERVE_METRICS_PORT

    given = {}

    def fake_load(sentences, **kwargs):
        given.update(kwargs, sentences=len(sentences))
        return {"rates": [], "highest_within_bound": None}

    monkeypatch.setattr(load, "run_load", fake_load)
    out = tmp_path / "load.json"
    cli("serve-load", "--data_file", small_inputs.tsv, "--qps", "5", "20", "--seconds", "0.5", "--json_out", out,
        check=True)
    assert given["rates"] == [5.0, 20.0] and given["seconds"] == 0.5 and given["sentences"] == small_inputs.count
    assert given["metrics_url"] == f"http://127.0.0.1:{SERVE_METRICS_PORT}/" and given["bound_ms"] == 100.0
    assert json.loads(out.read_text()) == {"rates": [], "highest_within_bound": None}
    refused = cli("serve-load", "--qps", "0")
    assert refused.returncode == 2 and "expected a positive number, got '0'" in refused.stderr
