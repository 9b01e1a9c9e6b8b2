#!/usr/bin/env bash
# Step 4: inference over $BIN_DIR into a new result folder under $RESULT_DIR
# (ais_bench on an NPU, the ONNX Runtime runner with the same output layout elsewhere).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/ais_inference.sh <batch_size>   (OUTPUT_DIRNAME names the result folder; default a timestamp)" 1 1 "$@"
bs="$1"
require_batch_size "$bs"
source_cann
backend="$(resolve_backend "$bs")"
dirname_args=()
if [[ -n "${OUTPUT_DIRNAME:-}" ]]; then dirname_args=(--output_dirname "$OUTPUT_DIRNAME"); fi
echo "[INFO] backend: $backend"

if [[ "$backend" == ais_bench ]]; then
  "$PYTHON" -m ais_bench --model "$(om_path "$bs")" --input "$(input_dirs)" --output "$RESULT_DIR" \
    --outfmt "$OUTFMT" --batchsize "$bs" "${dirname_args[@]}"
else
  tinybert infer --model "$(sim_onnx_path "$bs")" --input "$(input_dirs)" --output "$RESULT_DIR" \
    --outfmt "$OUTFMT" --batchsize "$bs" "${dirname_args[@]}"
fi
