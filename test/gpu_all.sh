#!/usr/bin/env bash
# Every GPU target of issue 40 in one command on a GPU machine: the model alone on a corpus (fp16), fp16 at the
# card's [1, 64], classify against the tokenizing alone, eval_all.sh at the card's batch sizes with its GPU column,
# the benchmark's compiled row against its graph row; one [SUMMARY] line each, and a record for docs/measurements/.
# Needs a PyTorch image's packages alone (no onnxsim, OpenVINO or TensorRT) and no network; on a faked GPU
# (TINYBERT_FAKE_GPU) it runs on the CPU and says its figures are not a GPU's. Options: tinybert gpu-all --help.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/gpu_all.sh [corpus.tsv] [--lines N] [--out DIR]   (default corpus: GPU_ALL_CORPUS, e.g. \$GLUE_DIR/train.tsv; GPU_ALL_LINES, GPU_ALL_DIR, DATA_FILE, CKPT_DIR, DEVICE)" 0 20 "$@"
invoked="bash test/gpu_all.sh $*"
corpus="$GPU_ALL_CORPUS"
if (($#)) && [[ "$1" != --* ]]; then
  corpus="$1"
  shift
fi
tinybert gpu-all --corpus "$corpus" --lines "$GPU_ALL_LINES" --data_file "$DATA_FILE" --ckpt_dir "$CKPT_DIR" \
  --device "$DEVICE" --out "$GPU_ALL_DIR" --eval_script "$REPO_ROOT/test/eval_all.sh" \
  --corpus_target "$CORPUS_TARGET" --card_shape_target "$CARD_SHAPE_TARGET" --ratio_target "$CHECK_TARGET" \
  --eval_target_s "$EVAL_TARGET_S" --invoked_as "$invoked" "$@"
