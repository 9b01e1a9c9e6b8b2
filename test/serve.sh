#!/usr/bin/env bash
# Serve the classifier over HTTP (TEI's API: POST /predict, GET /health, /info; Prometheus metrics on
# SERVE_METRICS_PORT) on Ray Serve, the model chosen by the settings every step reads (BACKEND, ORT_MODEL,
# GPU_MODEL) and opened through the one prepare step. SIGTERM or Ctrl-C: /health turns 503, requests in flight
# are answered, Serve stops, exit 0. Options given here replace the settings: python -m tinybert serve --help.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/serve.sh [--host ADDRESS] [--port PORT] [--metrics-port PORT] [--replicas N] [python -m tinybert serve options]" 0 100 "$@"

# exec: a SIGTERM sent to this script reaches the server itself, which drains; bash would not pass it on.
exec "$PYTHON" -m tinybert serve --ckpt_dir "$CKPT_DIR" --model_dir "$MODEL_DIR" --backend "$BACKEND" --ort_model "$ORT_MODEL" \
  --gpu_model "$GPU_MODEL" --device "$DEVICE" --requests "$REQUESTS" --call_tokens "$CALL_TOKENS" \
  --batch_size "$CLASSIFY_BATCH" --port "$SERVE_PORT" --metrics-port "$SERVE_METRICS_PORT" \
  --replicas "$SERVE_REPLICAS" --wait_ms "$SERVE_WAIT_MS" --max_inputs "$SERVE_MAX_INPUTS" \
  --max_bytes "$SERVE_MAX_BYTES" --max_queued "$SERVE_MAX_QUEUED" --retry_after "$SERVE_RETRY_AFTER" \
  --drain_s "$SERVE_DRAIN_S" "$@"
