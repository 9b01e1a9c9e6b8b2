#!/usr/bin/env bash
# Side-by-side benchmark of every row in the registry this machine can run (the PyTorch baseline, the
# card's static model, the project's CPU paths and their peers; where torch sees a CUDA GPU, the GPU paths and
# PyTorch on the GPU, also at 1024 and 4096; python -m tinybert registry lists them) over batch sizes; writes
# benchmark.md/.json/.png under $BENCH_DIR/benchmark-<time>, and the GPU speed record into MODEL_DIR.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/benchmark.sh [batch_size ...]   (default: ${BATCH_SIZES[*]}; BENCH_DIR, REPEATS, CALIB_FILE)" 0 64 "$@"
read_batch_sizes "$@"

calib_args=()
if [[ -f "$CALIB_FILE" ]]; then
  calib_args=(--calibration_file "$CALIB_FILE" --calibration_samples "$CALIB_SAMPLES" --calibration_seed "$CALIB_SEED")
else
  echo "[INFO] no calibration file at $CALIB_FILE (CALIB_FILE): the static int8 rows are skipped"
fi
tinybert benchmark --model_dir "$CKPT_DIR" --data_file "$DATA_FILE" --output "$BENCH_DIR" \
  --batch_sizes "${BATCH_SIZES[*]}" --repeats "$REPEATS" --max_seq_length "$SEQ_LEN" --opset "$OPSET" \
  --call_tokens "$CALL_TOKENS" --record_dir "$MODEL_DIR" --device "$DEVICE" "${calib_args[@]}"
