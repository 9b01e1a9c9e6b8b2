#!/usr/bin/env bash
# Side-by-side benchmark (rows A PyTorch eager, B the card's static ONNX model, C fast fp32, D int8;
# GPU rows where a GPU provider exists) over batch sizes; writes benchmark.md/.json/.png under
# $BENCH_DIR/benchmark-<time>. Defaults to the shared demo checkpoint and dev set when present.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/benchmark.sh [batch_size ...]   (default: ${BATCH_SIZES[*]}; BENCH_DIR, REPEATS)" 0 64 "$@"
read_batch_sizes "$@"

shared="$REPO_ROOT/../shared"
if [[ ! -f "$DATA_FILE" && -f "$shared/data/SST-2/dev.tsv" ]]; then DATA_FILE="$shared/data/SST-2/dev.tsv"; fi
if [[ ! -d "$CKPT_DIR" && -d "$shared/models/tinybert-sst2-demo" ]]; then CKPT_DIR="$shared/models/tinybert-sst2-demo"; fi
if [[ ! -f "$CALIB_FILE" && -f "$shared/data/SST-2/train.tsv" ]]; then CALIB_FILE="$shared/data/SST-2/train.tsv"; fi
calib_args=()
if [[ -f "$CALIB_FILE" ]]; then calib_args=(--calibration_file "$CALIB_FILE"); fi
echo "[INFO] checkpoint: $CKPT_DIR; data: $DATA_FILE; calibration: ${calib_args[*]:-none (static int8 rows skipped)}"

tinybert benchmark --model_dir "$CKPT_DIR" --data_file "$DATA_FILE" --output "$BENCH_DIR" \
  --batch_sizes "${BATCH_SIZES[*]}" --repeats "$REPEATS" --max_seq_length "$SEQ_LEN" --opset "$OPSET" "${calib_args[@]}"
