#!/usr/bin/env bash
# Step 2: checkpoint -> the card's static ONNX model for one batch size -> its simplified twin, both checked
# against PyTorch; also the batch-independent fast models (dynamic, fast fp32, int8) when missing or older
# than the weights, and with ORT_MODEL=int8_static the calibrated model; ORT_MODEL=auto exports every model auto may
# choose on this CPU and records each gate beside it. File names: python -m tinybert paths --help.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/pth2onnx.sh <batch_size>   (FAST_MODELS=0 skips the fast models; ORT_MODEL=int8_static or openvino_int8 also calibrates on CALIB_FILE)" 1 1 "$@"
bs="$1"
require_batch_size "$bs"
export_settings=(--model_dir "$CKPT_DIR" --output_dir "$MODEL_DIR" --opset "$OPSET" --max_seq_length "$SEQ_LEN"
  --features_dir "$BIN_DIR")

"$PYTHON" "$REPO_ROOT/TinyBERT_pth2onnx.py" --batch_size "$bs" "${export_settings[@]}"
# Each step below keeps its models when they are up to date (newer than the weights; the same calibration inputs).
if [[ "$FAST_MODELS" != 0 ]]; then
  tinybert export-fast "${export_settings[@]}"
  # ORT_MODEL's own model where another exporter makes it from the fast one (int8_static and openvino_int8
  # calibrate on CALIB_FILE; auto: each candidate); a no-op for the models above.
  tinybert export-model "${export_settings[@]}" --ort_model "$ORT_MODEL" --batch_size "$bs" \
    --calibration_file "$CALIB_FILE" --calibration_samples "$CALIB_SAMPLES" --calibration_seed "$CALIB_SEED"
fi
