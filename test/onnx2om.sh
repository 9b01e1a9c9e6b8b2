#!/usr/bin/env bash
# Step 3: ONNX -> OM with ATC for one Ascend chip: the card's static OM model from the simplified static
# ONNX model, or with DYNAMIC_DIMS=16,32,48,64 a gear model (from the simplified dynamic export) for
# length-bucketed inference. File names: python -m tinybert paths --help.
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

gear_args=()
if [[ -n "$DYNAMIC_DIMS" ]]; then
  onnx="$(model_path sim_dynamic)"
  length=-1
  gear_text="$(gear_list "$DYNAMIC_DIMS")"  # an assignment, so a bad list stops the script
  dims=()
  for gear in $gear_text; do dims+=("$gear,$gear,$gear"); done
  gear_args=(--dynamic_dims="$(IFS=';'; echo "${dims[*]}")")
else
  onnx="$(model_path sim --batch_size "$bs")"
  length="$SEQ_LEN"
fi
[[ -f "$onnx" ]] || die "$onnx: expected the ONNX model, found no such file (run test/pth2onnx.sh $bs)"
shape="input_ids:$bs,$length;segment_ids:$bs,$length;input_mask:$bs,$length"
om="$(om_path "$bs")"

atc --framework=5 --input_format=ND --model="$onnx" --input_shape="$shape" "${gear_args[@]}" \
  --output="${om%.om}" --soc_version="Ascend$chip_name" \
  --precision_mode="$PRECISION_MODE" --log=error
echo "[INFO] wrote $om"
