#!/usr/bin/env bash
# A quick look at the model: label and probabilities for sentences given as arguments, or one per
# line on stdin. PyTorch on $CKPT_DIR by default, on the GPU where torch sees one (BACKEND=auto, GPU_MODEL);
# ONNX_MODEL=<file.onnx> runs that file instead, on the
# runtime of ORT_MODEL's path (ONNX Runtime; OpenVINO bf16 for ORT_MODEL=bf16); ONNX_MODEL=<folder> runs ORT_MODEL's
# model in it (auto, the default here: the fastest whose gate passed at export on this CPU class).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/predict.sh [sentence ...]   (no sentences: one per line on stdin; ONNX_MODEL=<file.onnx> or <model folder> for ONNX Runtime)" 0 100000 "$@"

if [[ -n "$ONNX_MODEL" ]]; then
  model_args=(--onnx "$ONNX_MODEL" --ort_model "$ORT_MODEL" --requests "$REQUESTS" --vocab_file "$CKPT_DIR/vocab.txt"
    --calibration_file "$CALIB_FILE")
else
  model_args=(--model_dir "$CKPT_DIR" --backend "$BACKEND" --gpu_model "$GPU_MODEL" --gates_dir "$MODEL_DIR"
    --device "$DEVICE")
fi
# "--" ends the options: a sentence that starts with "-" is still a sentence.
tinybert predict "${model_args[@]}" --max_seq_length "$SEQ_LEN" -- "$@"
