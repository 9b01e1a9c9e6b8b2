#!/usr/bin/env bash
# LoadGen side by side on this machine: for each of the project's CPU paths it runs and the OpenVINO int8 peer
# (OV8), SingleStream p90, Offline samples/s and the highest VALID Server QPS at p99 <= LOADGEN_LATENCY_MS with
# the project's batcher and with the no-wait two-worker baseline; prints the table and keeps it, with every
# run's LoadGen logs, in a new folder under $LOADGEN_DIR. Run it on an idle machine with LOADGEN_PROFILE=full.
# Options go to the step (python -m tinybert loadgen-measure --help), e.g. --paths fast,int8,OV8 --qps 400,800.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/loadgen_measure.sh [step options ...]   (LOADGEN_PROFILE=full for the real measurement)" 0 64 "$@"
[[ -d "$BIN_DIR" ]] || die "expected the dev set's features in $BIN_DIR (BIN_DIR): run bash test/preprocess_data.sh first"
calib_args=()
if [[ -f "$CALIB_FILE" ]]; then calib_args=(--calibration_file "$CALIB_FILE"); fi

tinybert loadgen-measure --profile "$LOADGEN_PROFILE" --out "$LOADGEN_DIR" --bin_dir "$BIN_DIR" \
  --ckpt_dir "$CKPT_DIR" --model_dir "$MODEL_DIR" --latency_ms "$LOADGEN_LATENCY_MS" \
  --offline_qps "$LOADGEN_OFFLINE_QPS" --wait_ms "$LOADGEN_WAIT_MS" "${calib_args[@]}" "$@"
