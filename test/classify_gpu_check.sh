#!/usr/bin/env bash
# Classify on a GPU measured end to end: a TSV (default $GLUE_DIR/train.tsv) repeated to a million sentences or
# more, the tokenizer alone on it (its own threads, and processes), classify from TSV to TSV at GPU_MODEL and at
# gpu-fp32, the rate against the tokenizer's and the labels against fp32's. One summary on screen and a JSON in
# the work folder. Options: python -m tinybert classify-check --help.
set -euo pipefail
# Before the settings fill in the defaults: whether GPU_MODEL was set (else classify's own default, auto).
model_given="${GPU_MODEL:+yes}"
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/classify_gpu_check.sh [train.tsv] [--sentences N] [--work_dir DIR] [--json_out FILE]   (default: \$GLUE_DIR/train.tsv, repeated to 1000000 sentences)" 0 20 "$@"

source_tsv="$GLUE_DIR/train.tsv"
if (($#)) && [[ "$1" != --* ]]; then
  source_tsv="$1"
  shift
fi
model=()
if [[ -n "$model_given" ]]; then
  model=(--gpu_model "$GPU_MODEL")
fi
tinybert classify-check "$source_tsv" --ckpt_dir "$CKPT_DIR" --model_dir "$MODEL_DIR" --device "$DEVICE" \
  --batch_size "$GPU_CLASSIFY_BATCH" --tokenize_workers "$TOKENIZE_WORKERS" --sentences "$CHECK_SENTENCES" \
  --target "$CHECK_TARGET" "${model[@]}" "$@"
