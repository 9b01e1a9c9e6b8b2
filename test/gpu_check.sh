#!/usr/bin/env bash
# One command that checks a GPU machine end to end with a PyTorch image's packages alone (torch, transformers,
# tokenizers, numpy: no onnxsim, OpenVINO, onnxruntime-gpu or TensorRT needed): preprocess DATA_FILE, GPU
# inference at fp32 and the fastest gated precision, accuracy, perf at the card's shape, classify of a corpus.
# One summary on screen and a JSON in the work folder. Options: python -m tinybert gpu-check --help.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/gpu_check.sh [corpus.tsv] [--work_dir DIR] [--batch_sizes '1 8 64 1024'] [--json_out FILE]   (default corpus: none; e.g. \$GLUE_DIR/train.tsv)" 0 20 "$@"
corpus=()
if (($#)) && [[ "$1" != --* ]]; then
  corpus=(--corpus "$1")
  shift
fi
tinybert gpu-check --data_file "$DATA_FILE" --ckpt_dir "$CKPT_DIR" --device "$DEVICE" --repeats "$PERF_REPEATS" \
  --seconds "$PERF_SECONDS" --batch_sizes "$CHECK_BATCH_SIZES" --corpus_target "$CORPUS_TARGET" \
  "${corpus[@]}" "$@"
