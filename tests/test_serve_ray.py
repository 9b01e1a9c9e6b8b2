"""The real server (`python -m tinybert serve`, Ray Serve, two replicas) on 127.0.0.1, started once for the module:
the dev sentences' raw scores equal infer's logits and postprocess's accuracy, both replicas serve, a bounded load
reports, and SIGTERM with 50 requests in flight answers all 50 and exits 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import REPO, copy_models, fast_models_of

pytestmark = pytest.mark.slow
START_S = 300  # Ray's start, the replicas' model opening


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, body: dict, timeout: float = 60) -> tuple[int, object]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def server(inputs, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    models = copy_models(fast_models_of(inputs, tmp_path_factory), root / "models")
    port, metrics_port, ready = _free_port(), _free_port(), root / "ready"
    command = [sys.executable, "-m", "tinybert", "serve", "--ckpt_dir", str(inputs.checkpoint), "--model_dir",
               str(models), "--backend", "onnxruntime", "--ort_model", "fast", "--port", str(port), "--metrics-port",
               str(metrics_port), "--replicas", "2", "--ready_file", str(ready)]
    log = open(root / "serve.log", "wb")
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_S
    while not ready.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ready.is_file(), (root / "serve.log").read_text(errors="replace")[-3000:]
    process.models = models
    yield process, port, metrics_port
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    log.close()


def test_dev_raw_scores_equal_infer_s_and_both_replicas_serve(server, inputs, tmp_path):
    from conftest import input_dirs

    from tinybert.data.dataset import read_sst2_tsv
    from tinybert.data.features import preprocess
    from tinybert.serve.load import per_replica, scrape
    from tinybert.steps.inference import run_inference
    from tinybert.steps.postprocess import score

    process, port, metrics_port = server
    sentences = read_sst2_tsv(str(inputs.tsv)).sentences
    groups = [sentences[start:start + 32] for start in range(0, len(sentences), 32)]
    with ThreadPoolExecutor(8) as pool:  # requests at once: Serve spreads them over both replicas
        answers = list(pool.map(lambda group: _post(port, {"inputs": group, "raw_scores": True, "truncate": True}),
                                groups))
    assert {status for status, _ in answers} == {200}
    got = np.array([[{s["label"]: s["score"] for s in row}[name] for name in ("negative", "positive")]
                    for _, rows in answers for row in rows])
    # The step pipeline on the same model: preprocess, infer, postprocess (its logits and accuracy).
    bin_dir = tmp_path / "bert_bin"
    manifest = preprocess(str(inputs.tsv), str(inputs.checkpoint / "vocab.txt"), str(bin_dir), 64, progress=False)
    report = run_inference(str(process.models / "TinyBERT_fast.onnx"), input_dirs(bin_dir), str(tmp_path / "result"),
                           64, progress=False, bucket_edges="tight")
    scored = score(report.result_dir, str(bin_dir), predictions_out=str(tmp_path / "pipeline.tsv"), with_logits=True)
    pipeline = [line.split("\t") for line in (tmp_path / "pipeline.tsv").read_text().splitlines()[1:]]
    np.testing.assert_allclose(got, [[float(row[2]), float(row[3])] for row in pipeline], atol=1e-4)
    labels = np.asarray(manifest["labels"])
    assert int((got.argmax(axis=1) == labels).sum()) == scored["correct"]
    with ThreadPoolExecutor(16) as pool:  # enough requests at once that the router uses both replicas
        one = {"truncate": True}
        assert set(pool.map(lambda k: _post(port, {**one, "inputs": sentences[k % len(sentences)]})[0],
                            range(64))) == {200}
    served = per_replica(scrape(f"http://127.0.0.1:{metrics_port}/"))
    assert len(served) == 2 and all(count > 0 for count in served.values()), served


def test_a_bounded_load_reports_batches_and_latency(server, inputs):
    from tinybert.data.dataset import read_sst2_tsv
    from tinybert.serve.load import run_load

    process, port, metrics_port = server
    report = run_load(read_sst2_tsv(str(inputs.tsv)).sentences, host="127.0.0.1", port=port,
                      metrics_url=f"http://127.0.0.1:{metrics_port}/", rates=[20.0], seconds=1.0, bound_ms=5000.0,
                      log=lambda line: None)
    rate = report["rates"][0]
    assert rate["sent"] == 20 and rate["ok"] + rate["overloaded"] == 20 and rate["mean_batch"] >= 1.0
    assert rate["p99_ms"] >= rate["p50_ms"] > 0


def test_sigterm_with_50_in_flight_answers_all_and_exits_0(server):
    process, port, metrics_port = server
    sentence = ["a film that keeps its promise and then some"] * 8
    with ThreadPoolExecutor(50) as pool:
        futures = [pool.submit(_post, port, {"inputs": sentence}) for _ in range(50)]
        time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        health = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                try:
                    health.append(_health(port))
                except OSError:
                    health.append(0)
                time.sleep(0.1)

        watcher = threading.Thread(target=watch)
        watcher.start()
        statuses = [future.result()[0] for future in futures]
        time.sleep(0.5)
        stop.set()
        watcher.join()
    assert statuses == [200] * 50
    assert 503 in health, health
    assert process.wait(120) == 0
