#!/usr/bin/env bash
# Step 2: checkpoint -> TinyBERT_bs${bs}.onnx -> TinyBERT_sim_bs${bs}.onnx, both checked against PyTorch.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/pth2onnx.sh <batch_size>" 1 1 "$@"
bs="$1"
require_batch_size "$bs"

"$PYTHON" "$REPO_ROOT/TinyBERT_pth2onnx.py" --model_dir "$CKPT_DIR" --batch_size "$bs" --output_dir "$MODEL_DIR" \
  --opset "$OPSET" --max_seq_length "$SEQ_LEN" --features_dir "$BIN_DIR"
