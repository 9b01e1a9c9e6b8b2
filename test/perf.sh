#!/usr/bin/env bash
# Step 6: pure-inference throughput (ais_bench --loop on an NPU, ONNX Runtime elsewhere).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/perf.sh <batch_size>   (LOOP: iterations; default 1000 on ais_bench, 100 on ONNX Runtime)" 1 1 "$@"
bs="$1"
require_batch_size "$bs"
source_cann
backend="$(resolve_backend "$bs")"
echo "[INFO] backend: $backend"

if [[ "$backend" == ais_bench ]]; then
  "$PYTHON" -m ais_bench --model "$(om_path "$bs")" --loop "${LOOP:-1000}" --batchsize "$bs"
else
  tinybert perf --model "$(sim_onnx_path "$bs")" --batchsize "$bs" --loop "${LOOP:-100}"
fi
