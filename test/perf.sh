#!/usr/bin/env bash
# Step 6: pure-inference throughput: ais_bench --loop on an NPU; elsewhere ONNX Runtime on the
# ORT_MODEL model (static: a full-length batch as ais_bench; fast/int8: the length-bucketed
# batches of $BIN_DIR, the work that model really does). BACKEND=cann: the static model on NPU $DEVICE.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/perf.sh <batch_size>   (LOOP: iterations; default 1000 on ais_bench, 100 on ONNX Runtime)" 1 1 "$@"
start_inference_step "$1"
echo "[INFO] backend: $backend"

if [[ "$backend" == ais_bench ]]; then
  "$PYTHON" -m ais_bench --model "$(om_path "$bs")" --loop "${LOOP:-1000}" --batchsize "$bs" --device "$DEVICE"
elif [[ "$backend" == cann ]]; then  # the simplified static model on NPU $DEVICE, a full-length batch
  model="$(sim_onnx_path "$bs")"
  [[ -f "$model" ]] || die "$model: expected the simplified ONNX model for BACKEND=cann, found no such file (run test/pth2onnx.sh $bs)"
  echo "[INFO] model: $model"
  tinybert perf --model "$model" --backend cann --device "$DEVICE" --batchsize "$bs" --loop "${LOOP:-100}"
else
  model="$(ort_model_path "$bs")"
  [[ -f "$model" ]] || die "$model: expected the ONNX model for ORT_MODEL=$ORT_MODEL, found no such file (run test/pth2onnx.sh $bs)"
  echo "[INFO] model: $model"
  tinybert perf --model "$model" --batchsize "$bs" --loop "${LOOP:-100}" --bin_dir "$BIN_DIR" \
    --bucket_edges "$BUCKET_EDGES"
fi
