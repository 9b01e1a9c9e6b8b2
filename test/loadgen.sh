#!/usr/bin/env bash
# MLPerf LoadGen on the model the settings name (BACKEND, ORT_MODEL, GPU_MODEL, REQUESTS, CALL_TOKENS), over the
# dev set's features in $BIN_DIR (bash test/preprocess_data.sh first): SingleStream (p90), MultiStream (p99 of
# 8-sample queries), Server (Poisson arrivals, p99 within LOADGEN_LATENCY_MS; several --qps values sweep) or
# Offline (samples/s), performance or accuracy mode. Each run adds a folder with LoadGen's logs under
# $LOADGEN_DIR; an INVALID result prints LoadGen's reasons and exits 1. Options after the mode go to the step
# (python -m tinybert loadgen --help), e.g. --qps 200,400,800 or --row OV8.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/loadgen.sh <SingleStream|MultiStream|Server|Offline> [performance|accuracy] [step options ...]" 1 64 "$@"
scenario="$1"
shift
mode=performance
if (($#)) && [[ "$1" != -* ]]; then
  mode="$1"
  shift
fi
[[ -d "$BIN_DIR" ]] || die "expected the dev set's features in $BIN_DIR (BIN_DIR): run bash test/preprocess_data.sh first"
calib_args=()
if [[ -f "$CALIB_FILE" ]]; then calib_args=(--calibration_file "$CALIB_FILE"); fi

tinybert loadgen --scenario "$scenario" --mode "$mode" --profile "$LOADGEN_PROFILE" --out "$LOADGEN_DIR" \
  --bin_dir "$BIN_DIR" --ckpt_dir "$CKPT_DIR" --model_dir "$MODEL_DIR" --backend "$BACKEND" --ort_model "$ORT_MODEL" \
  --gpu_model "$GPU_MODEL" --requests "$REQUESTS" --device "$DEVICE" --call_tokens "$CALL_TOKENS" \
  --bucket_edges "$BUCKET_EDGES" --latency_ms "$LOADGEN_LATENCY_MS" --qps "$LOADGEN_QPS" \
  --offline_qps "$LOADGEN_OFFLINE_QPS" --expected_ms "$LOADGEN_EXPECTED_MS" --wait_ms "$LOADGEN_WAIT_MS" \
  --batcher "$LOADGEN_BATCHER" "${calib_args[@]}" "$@"
