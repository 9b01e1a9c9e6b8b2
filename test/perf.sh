#!/usr/bin/env bash
# Step 6: pure-inference throughput: the model card's ais_bench --loop on an NPU; elsewhere the package
# times what the settings name (BACKEND, ORT_MODEL: the length-bucketed batches of $BIN_DIR for the CPU
# paths, a full-length batch for the static models, as ais_bench does).
# --json_out FILE: the package also writes its figures there (ais_bench only prints them).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/perf.sh <batch_size> [--json_out FILE]   (LOOP: iterations, its default depends on the backend; PERF_SECONDS, PERF_REPEATS: see below)" 1 3 "$@"
start_inference_step "$1"
shift
read_model_settings
echo "[INFO] backend: $backend"

if [[ "$backend" == ais_bench ]]; then
  # A foreign tool: its printed lines are its only record (eval_all.sh keeps them in a log).
  (($# == 0)) || echo "[INFO] ais_bench writes no JSON: $* not passed on; its figures are the lines it prints"
  loop="$(backend_setting LOOP ais_bench)"
  "$PYTHON" -m ais_bench --model "$(om_path "$bs")" --loop "$loop" --batchsize "$bs" --device "$DEVICE"
else
  # shellcheck disable=SC2153  # LOOP is a setting (empty: the backend's default, which perf knows)
  # Each of PERF_REPEATS repeats times whole passes until LOOP calls and PERF_SECONDS are done: the median, and the spread.
  tinybert perf --backend "$backend" "${model_settings[@]}" --batchsize "$bs" --loop "$LOOP" --bin_dir "$BIN_DIR" \
    --bucket_edges "$BUCKET_EDGES" --seconds "$PERF_SECONDS" --repeats "$PERF_REPEATS" "$@"
fi
