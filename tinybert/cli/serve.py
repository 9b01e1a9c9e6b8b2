"""The serve step's command line (test/serve.sh): the classifier behind a TEI-compatible HTTP API on Ray Serve, the
model chosen by the steps' settings; and serve-load, a bounded load on a running server over loopback."""

from __future__ import annotations

from tinybert.cli.parsers import DEFAULTS, StepTable, non_negative_int, positive_int

STEPS = StepTable()
step = STEPS.step


def positive_float(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


@step("serve", "serve the classifier over HTTP (TEI's /predict, /health, /info; Prometheus metrics on their own "
               "port) on Ray Serve, with token-budget batching; SIGTERM drains and exits 0")
def _serve(argv, prog):
    from tinybert.registry import ort_models
    from tinybert.settings import (CALL_TOKENS, CLASSIFY_BATCH, SERVE_DRAIN_S, SERVE_MAX_BYTES, SERVE_MAX_INPUTS,
                                   SERVE_MAX_QUEUED, SERVE_METRICS_PORT, SERVE_PORT, SERVE_REPLICAS, SERVE_RETRY_AFTER,
                                   SERVE_WAIT_MS)

    p = STEPS.parser("serve", prog)
    p.add_argument("--ckpt_dir", default=DEFAULTS["CKPT_DIR"], help="CKPT_DIR: the checkpoint (weights, vocab.txt)")
    p.add_argument("--model_dir", default=DEFAULTS["MODEL_DIR"], help="MODEL_DIR: where the exported models live")
    p.add_argument("--backend", default=DEFAULTS["BACKEND"], help="BACKEND, as every step reads it")
    p.add_argument("--ort_model", default=DEFAULTS["ORT_MODEL"], choices=ort_models(), help="ORT_MODEL")
    p.add_argument("--gpu_model", default=DEFAULTS["GPU_MODEL"], help="GPU_MODEL")
    p.add_argument("--device", type=non_negative_int, default=None, help="DEVICE (a GPU replica's is its own GPU 0)")
    p.add_argument("--requests", default=DEFAULTS["REQUESTS"], help="REQUESTS: model calls in flight per replica")
    p.add_argument("--call_tokens", type=non_negative_int, default=CALL_TOKENS,
                   help="CALL_TOKENS: a CPU batch closes before rows x longest passes it")
    p.add_argument("--batch_size", type=positive_int, default=CLASSIFY_BATCH,
                   help="CLASSIFY_BATCH: the most sentences one batch takes")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=positive_int, default=SERVE_PORT, help="SERVE_PORT")
    p.add_argument("--metrics-port", dest="metrics_port", type=positive_int, default=SERVE_METRICS_PORT,
                   help="SERVE_METRICS_PORT")
    p.add_argument("--replicas", type=positive_int, default=SERVE_REPLICAS, help="SERVE_REPLICAS")
    p.add_argument("--wait_ms", type=float, default=SERVE_WAIT_MS, help="SERVE_WAIT_MS")
    p.add_argument("--max_inputs", type=positive_int, default=SERVE_MAX_INPUTS, help="SERVE_MAX_INPUTS")
    p.add_argument("--max_bytes", type=positive_int, default=SERVE_MAX_BYTES, help="SERVE_MAX_BYTES")
    p.add_argument("--max_queued", type=positive_int, default=SERVE_MAX_QUEUED, help="SERVE_MAX_QUEUED")
    p.add_argument("--retry_after", type=positive_int, default=SERVE_RETRY_AFTER, help="SERVE_RETRY_AFTER")
    p.add_argument("--drain_s", type=float, default=SERVE_DRAIN_S, help="SERVE_DRAIN_S")
    p.add_argument("--ready_file", default=None, help="a file written once every replica is ready (for scripts)")
    a = p.parse_args(argv)
    import os

    from tinybert.errors import CheckpointError, expect
    from tinybert.serve.app import Limits

    expect(os.path.isdir(a.ckpt_dir), CheckpointError,
           f"{a.ckpt_dir}: expected the TinyBERT checkpoint folder (CKPT_DIR: config, weights, vocab.txt), found no "
           "such folder")
    from tinybert.serve.ray_serve import ServeConfig, run_server

    settings = {"backend": a.backend, "ort_model": a.ort_model, "gpu_model": a.gpu_model,
                "model_dir": os.path.abspath(a.model_dir), "device": a.device, "requests": a.requests,
                "call_tokens": a.call_tokens, "batch_size": a.batch_size}
    limits = Limits(max_inputs=a.max_inputs, max_bytes=a.max_bytes, max_queued=a.max_queued,
                    retry_after=a.retry_after, wait_s=a.wait_ms / 1000.0)
    config = ServeConfig(os.path.abspath(a.ckpt_dir), settings, limits, model_id=os.path.basename(
        os.path.abspath(a.ckpt_dir)))
    run_server(config, host=a.host, port=a.port, metrics_port=a.metrics_port, replicas=a.replicas,
               drain_s=a.drain_s, ready_file=a.ready_file)


@step("serve-load", "a bounded load on a running server over loopback: rates for seconds each; p50/p99 latency, "
                    "mean batch size, the highest rate under a latency bound, sentences per replica")
def _serve_load(argv, prog):
    from tinybert.settings import SERVE_METRICS_PORT, SERVE_PORT

    p = STEPS.parser("serve-load", prog)
    p.add_argument("--data_file", default=DEFAULTS["DATA_FILE"], help="DATA_FILE: the sentences sent")
    p.add_argument("--host", default="127.0.0.1", help="the server's loopback address")
    p.add_argument("--port", type=positive_int, default=SERVE_PORT, help="SERVE_PORT")
    p.add_argument("--metrics-port", dest="metrics_port", type=positive_int, default=SERVE_METRICS_PORT,
                   help="SERVE_METRICS_PORT")
    p.add_argument("--qps", type=positive_float, nargs="+", default=[10.0], help="request rates tried, in turn")
    p.add_argument("--seconds", type=positive_float, default=5.0, help="seconds per rate")
    p.add_argument("--bound_ms", type=positive_float, default=100.0, help="the p99 latency a rate must hold")
    p.add_argument("--per_request", type=positive_int, default=1, help="sentences per request")
    p.add_argument("--json_out", default=None, help="the report as JSON too")
    a = p.parse_args(argv)
    import json

    from tinybert.data.dataset import read_sst2_tsv
    from tinybert.serve.load import run_load

    report = run_load(read_sst2_tsv(a.data_file).sentences, host=a.host, port=a.port,
                      metrics_url=f"http://{a.host}:{a.metrics_port}/", rates=a.qps, seconds=a.seconds,
                      bound_ms=a.bound_ms, per_request=a.per_request)
    if a.json_out:
        with open(a.json_out, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
