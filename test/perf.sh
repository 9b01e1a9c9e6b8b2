#!/usr/bin/env bash
# Step 6: pure-inference throughput: the model card's ais_bench --loop on an NPU; elsewhere the package
# times what the settings name (BACKEND, ORT_MODEL: the length-bucketed batches of $BIN_DIR for the CPU
# paths, a full-length batch for the static models, as ais_bench does).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/perf.sh <batch_size>   (LOOP: iterations; its default depends on the backend, see below)" 1 1 "$@"
start_inference_step "$1"
read_model_settings
echo "[INFO] backend: $backend"

if [[ "$backend" == ais_bench ]]; then
  loop="$(backend_setting LOOP ais_bench)"
  "$PYTHON" -m ais_bench --model "$(om_path "$bs")" --loop "$loop" --batchsize "$bs" --device "$DEVICE"
else
  tinybert perf --backend "$backend" "${model_settings[@]}" --batchsize "$bs" --loop "$LOOP" --bin_dir "$BIN_DIR" \
    --bucket_edges "$BUCKET_EDGES"
fi
