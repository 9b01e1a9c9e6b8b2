#!/usr/bin/env bash
# Step 6: pure-inference throughput: ais_bench --loop on an NPU; elsewhere ONNX Runtime on the
# ORT_MODEL model (static: a full-length batch as ais_bench; fast/int8: the length-bucketed
# batches of $BIN_DIR, the work that model really does). BACKEND=cann: the static model on NPU $DEVICE.
# --json_out FILE: our perf step also writes its figures there (ais_bench only prints them).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/perf.sh <batch_size> [--json_out FILE]   (LOOP: iterations; its default depends on the backend, see below)" 1 3 "$@"
start_inference_step "$1"
shift
echo "[INFO] backend: $backend"
loop="$(backend_setting LOOP "$backend")"

if [[ "$backend" == ais_bench ]]; then
  # A foreign tool: its printed lines are its only record (eval_all.sh keeps them in a log).
  (($# == 0)) || echo "[INFO] ais_bench writes no JSON: $* not passed on; its figures are the lines it prints"
  om="$(om_path "$bs")"
  "$PYTHON" -m ais_bench --model "$om" --loop "$loop" --batchsize "$bs" --device "$DEVICE"
elif [[ "$backend" == cann ]]; then  # the simplified static model on NPU $DEVICE, a full-length batch
  model="$(model_path cann --batch_size "$bs")"
  echo "[INFO] model: $model"
  tinybert perf --model "$model" --backend cann --device "$DEVICE" --batchsize "$bs" --loop "$loop" "$@"
else
  model="$(ort_model_path "$bs")"
  runtime="$(cpu_runtime)"
  echo "[INFO] model: $model, on $runtime"
  tinybert perf --backend "$runtime" --model "$model" --batchsize "$bs" --loop "$loop" --bin_dir "$BIN_DIR" \
    --bucket_edges "$BUCKET_EDGES" --requests "$REQUESTS" "$@"
fi
