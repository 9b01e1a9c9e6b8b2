#!/usr/bin/env bash
# Step 4: inference over $BIN_DIR into a new result folder under $RESULT_DIR: ais_bench on an NPU
# (per gear with --dymDims when DYNAMIC_DIMS is set), else ONNX Runtime with the same output layout
# (ORT_MODEL=fast by default: fused fp32 with length bucketing; int8_static, bf16, int8; or static, the card's model).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/ais_inference.sh <batch_size>   (OUTPUT_DIRNAME names the result folder; default a timestamp)" 1 1 "$@"
start_inference_step "$1"
dirname_args=()
if [[ -n "$OUTPUT_DIRNAME" ]]; then dirname_args=(--output_dirname "$OUTPUT_DIRNAME"); fi

ais_bench_gears() {
  local gears_dir="$BIN_DIR.gears" parts length folder
  parts="$(mktemp -d "$RESULT_DIR/.gears-XXXXXX")"
  tinybert gears split --bin_dir "$BIN_DIR" --edges "$DYNAMIC_DIMS" --output_dir "$gears_dir" --print_gears |
    while read -r length folder; do
      [[ "$length" =~ ^[0-9]+$ ]] || { echo "$length $folder"; continue; }  # pass [INFO] lines through
      "$PYTHON" -m ais_bench --model "$om" \
        --input "$folder/input_ids,$folder/segment_ids,$folder/input_mask" --output "$parts" \
        --output_dirname "gear$length" --outfmt "$OUTFMT" --batchsize "$bs" \
        --dymDims "input_ids:$bs,$length;segment_ids:$bs,$length;input_mask:$bs,$length"
    done
  tinybert gears merge --parts "$parts" --output "$RESULT_DIR" --outfmt "$OUTFMT" --gears_dir "$gears_dir" \
    "${dirname_args[@]}"
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
      --outfmt "$OUTFMT" --batchsize "$bs" "${dirname_args[@]}"
  fi
else
  model="$(ort_model_path "$bs")"
  runtime="$(cpu_runtime)"
  echo "[INFO] backend: onnxruntime, ORT_MODEL=$ORT_MODEL runs on $runtime, model $model"
  tinybert infer --backend "$runtime" --model "$model" --input "$(input_dirs)" --output "$RESULT_DIR" \
    --outfmt "$OUTFMT" --batchsize "$bs" --bucket_edges "$BUCKET_EDGES" "${dirname_args[@]}"
fi
