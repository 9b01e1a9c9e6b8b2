#!/usr/bin/env bash
# Step 3: TinyBERT_sim_bs${bs}.onnx -> TinyBERT_bs${bs}.om with ATC for one Ascend chip.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/onnx2om.sh <batch_size> <chip_name>   (chip_name: Name column of 'npu-smi info', e.g. 310P3)" 2 2 "$@"
bs="$1"
chip_name="$2"
require_batch_size "$bs"
[[ "$chip_name" =~ ^[0-9A-Za-z]+$ ]] || die "expected a chip name such as 310, 310P3 or 310B1, got '$chip_name'"

source_cann
command -v atc >/dev/null 2>&1 || missing_tool "atc was not found: install the CANN toolkit (6.0 or later) and source its set_env.sh (looked for $CANN_SET_ENV; set CANN_SET_ENV if it lives elsewhere). Without an NPU, inference can go on with ONNX Runtime: BACKEND=onnxruntime bash test/ais_inference.sh $bs"

onnx="$(sim_onnx_path "$bs")"
[[ -f "$onnx" ]] || die "$onnx: expected the simplified ONNX model, found no such file (run test/pth2onnx.sh $bs)"
shape="input_ids:$bs,$SEQ_LEN;segment_ids:$bs,$SEQ_LEN;input_mask:$bs,$SEQ_LEN"

atc --framework=5 --input_format=ND --model="$onnx" --input_shape="$shape" \
  --output="$MODEL_DIR/TinyBERT_bs$bs" --soc_version="Ascend$chip_name" \
  --precision_mode="$PRECISION_MODE" --log=error
echo "[INFO] wrote $(om_path "$bs")"
