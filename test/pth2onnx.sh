#!/usr/bin/env bash
# Step 2: checkpoint -> the card's static ONNX model for one batch size -> its simplified twin, both checked
# against PyTorch; also the batch-independent fast models (dynamic, fused fp32, int8) when missing or older
# than the weights. File names: python -m tinybert paths --help.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/pth2onnx.sh <batch_size>   (FAST_MODELS=0 skips the fast models; ORT_MODEL=int8_static also calibrates on CALIB_FILE)" 1 1 "$@"
bs="$1"
require_batch_size "$bs"

"$PYTHON" "$REPO_ROOT/TinyBERT_pth2onnx.py" --model_dir "$CKPT_DIR" --batch_size "$bs" --output_dir "$MODEL_DIR" \
  --opset "$OPSET" --max_seq_length "$SEQ_LEN" --features_dir "$BIN_DIR"

# fast_models_stale MODEL...: true when one is missing or older than the weights.
fast_models_stale() {
  local model
  for model in "$@"; do
    [[ -f "$model" && ! "$CKPT_DIR/pytorch_model.bin" -nt "$model" ]] || return 0
  done
  return 1
}
if [[ "$FAST_MODELS" != 0 ]]; then
  model_list="$(model_path fast_models)"
  mapfile -t fast_model_paths <<<"$model_list"
  if fast_models_stale "${fast_model_paths[@]}"; then
    tinybert export-fast --model_dir "$CKPT_DIR" --output_dir "$MODEL_DIR" --opset "$OPSET" \
      --max_seq_length "$SEQ_LEN" --features_dir "$BIN_DIR"
  fi
fi
# ORT_MODEL=int8_static: the calibrated model (the step itself keeps it when its recorded calibration inputs match).
if [[ "$ORT_MODEL" == int8_static ]]; then
  tinybert export-int8-static --model_dir "$CKPT_DIR" --output_dir "$MODEL_DIR" --opset "$OPSET" \
    --max_seq_length "$SEQ_LEN" --features_dir "$BIN_DIR" --calibration_file "$CALIB_FILE" \
    --calibration_samples "$CALIB_SAMPLES" --calibration_seed "$CALIB_SEED"
fi
