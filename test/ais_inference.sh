#!/usr/bin/env bash
# Step 4: inference over $BIN_DIR into a new result folder under $RESULT_DIR. On an NPU: the model card's
# ais_bench command on the static OM model (with DYNAMIC_DIMS: ais_bench once per gear, then one merged
# folder). Elsewhere the package runs what the settings name (BACKEND, ORT_MODEL, REQUESTS, DEVICE, ...)
# and writes the same layout: python -m tinybert registry lists the backends and CPU paths.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/ais_inference.sh <batch_size>   (OUTPUT_DIRNAME names the result folder; default a timestamp)" 1 1 "$@"
start_inference_step "$1"
read_model_settings
dirname_args=()
if [[ -n "$OUTPUT_DIRNAME" ]]; then dirname_args=(--output_dirname "$OUTPUT_DIRNAME"); fi

if [[ "$backend" == ais_bench && -z "$DYNAMIC_DIMS" ]]; then
  om="$(om_path "$bs")"
  echo "[INFO] backend: ais_bench, model $om"
  mkdir -p "$RESULT_DIR"
  "$PYTHON" -m ais_bench --model "$om" --input "$(input_dirs)" --output "$RESULT_DIR" \
    --outfmt "$OUTFMT" --batchsize "$bs" --device "$DEVICE" "${dirname_args[@]}"
else
  echo "[INFO] backend: $backend"
  tinybert infer --backend "$backend" "${model_settings[@]}" --input "$(input_dirs)" --output "$RESULT_DIR" \
    --outfmt "$OUTFMT" --batchsize "$bs" --bucket_edges "$BUCKET_EDGES" "${dirname_args[@]}"
fi
