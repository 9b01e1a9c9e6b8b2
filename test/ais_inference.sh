#!/usr/bin/env bash
# Step 4: inference over $BIN_DIR into a new result folder under $RESULT_DIR: ais_bench on an NPU
# (per gear with --dymDims when DYNAMIC_DIMS is set), else ONNX Runtime with the same output layout
# (ORT_MODEL=fast by default: fused fp32 with length bucketing; int8_static, bf16, int8; or static, the card's model).
# BACKEND=cann runs the simplified static ONNX model on NPU $DEVICE through ONNX Runtime's CANN provider.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/ais_inference.sh <batch_size>   (OUTPUT_DIRNAME names the result folder; default a timestamp)" 1 1 "$@"
start_inference_step "$1"
dirname_args=()
if [[ -n "$OUTPUT_DIRNAME" ]]; then dirname_args=(--output_dirname "$OUTPUT_DIRNAME"); fi

# The per-gear ais_bench folders are staging: this shell holds a lock on "<folder>.lock" for as long
# as it lives (the kernel drops it however the script ends), so a later run removes them only when
# this one is gone; the protocol of tinybert/fileio.py. Sets parts.
make_gear_parts_folder() {
  local lock
  if command -v flock >/dev/null 2>&1; then
    lock="$(mktemp "$RESULT_DIR/.gears-XXXXXXXX.lock")"
    exec {gear_lock_fd}>>"$lock"
    flock -n "$gear_lock_fd"
    parts="${lock%.lock}"
    mkdir -m 700 "$parts"
  else  # no lock: later runs leave the folder alone until it has been idle for an hour
    parts="$(mktemp -d "$RESULT_DIR/.gears-XXXXXXXX")"
  fi
}

ais_bench_gears() {
  local gears_dir="$BIN_DIR.gears" length folder
  make_gear_parts_folder
  tinybert gears split --bin_dir "$BIN_DIR" --edges "$DYNAMIC_DIMS" --output_dir "$gears_dir" --print_gears |
    while read -r length folder; do
      [[ "$length" =~ ^[0-9]+$ ]] || { echo "$length $folder"; continue; }  # pass [INFO] lines through
      "$PYTHON" -m ais_bench --model "$om" \
        --input "$folder/input_ids,$folder/segment_ids,$folder/input_mask" --output "$parts" \
        --output_dirname "gear$length" --outfmt "$OUTFMT" --batchsize "$bs" --device "$DEVICE" \
        --dymDims "input_ids:$bs,$length;segment_ids:$bs,$length;input_mask:$bs,$length"
    done
  tinybert gears merge --parts "$parts" --output "$RESULT_DIR" --outfmt "$OUTFMT" --gears_dir "$gears_dir" \
    "${dirname_args[@]}"
  rm -f "$parts.lock"
}

if [[ "$backend" == ais_bench ]]; then
  om="$(om_path "$bs")"
  echo "[INFO] backend: ais_bench, model $om"
  mkdir -p "$RESULT_DIR"
  if [[ -n "$DYNAMIC_DIMS" ]]; then
    gear_list "$DYNAMIC_DIMS" >/dev/null
    ais_bench_gears
  else
    "$PYTHON" -m ais_bench --model "$om" --input "$(input_dirs)" --output "$RESULT_DIR" \
      --outfmt "$OUTFMT" --batchsize "$bs" --device "$DEVICE" "${dirname_args[@]}"
  fi
elif [[ "$backend" == cann ]]; then
  model="$(model_path cann --batch_size "$bs")"
  echo "[INFO] backend: onnxruntime CANNExecutionProvider on NPU $DEVICE, model $model"
  tinybert infer --model "$model" --backend cann --device "$DEVICE" --input "$(input_dirs)" --output "$RESULT_DIR" \
    --outfmt "$OUTFMT" --batchsize "$bs" "${dirname_args[@]}"
else
  model="$(ort_model_path "$bs")"
  runtime="$(cpu_runtime)"
  echo "[INFO] backend: onnxruntime, ORT_MODEL=$ORT_MODEL runs on $runtime, model $model"
  tinybert infer --backend "$runtime" --model "$model" --input "$(input_dirs)" --output "$RESULT_DIR" \
    --outfmt "$OUTFMT" --batchsize "$bs" --bucket_edges "$BUCKET_EDGES" --requests "$REQUESTS" "${dirname_args[@]}"
fi
