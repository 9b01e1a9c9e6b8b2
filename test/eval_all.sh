#!/usr/bin/env bash
# Step 7: rebuild the model card's accuracy/performance table: for each batch size export, infer,
# score and time, then print and save a Markdown table (plus JSON) in $EVAL_DIR.
# On an NPU set CHIP_NAME (e.g. 310P3) to build the .om files too (BACKEND=auto then picks ais_bench);
# elsewhere ORT_MODEL picks the CPU path: static (the card's), fast, int8, int8_static, bf16 or openvino_int8
# (`python -m tinybert registry paths`); auto (the default here) times the fastest path whose gate passed at
# export and scores the path ais_inference.sh runs by default (fp32).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/eval_all.sh [batch_size ...]   (default: ${BATCH_SIZES[*]}; EVAL_DIR, CHIP_NAME, LOOP)" 0 64 "$@"
read_batch_sizes "$@"

[[ ! -e "$EVAL_DIR" ]] || die "$EVAL_DIR: already exists; refusing to overwrite an earlier evaluation (set EVAL_DIR)"
source_cann
BACKEND="$(choose_backend --chip_name="$CHIP_NAME" --batch_size "${BATCH_SIZES[@]}")"
export BACKEND
accuracy_model="$ORT_MODEL"
if [[ "$ORT_MODEL" == auto ]]; then accuracy_model="$(tinybert settings --get ORT_MODEL --script ais_inference.sh)"; fi
accuracy_gpu_model="$GPU_MODEL"
if [[ "$GPU_MODEL" == auto ]]; then accuracy_gpu_model="$(tinybert settings --get GPU_MODEL --script ais_inference.sh)"; fi
# The card's GPU column, where torch sees a CUDA device: perf_gpu.sh at the card's shape, fp32.
gpu_column=0
if tinybert backend --requested gpu --ckpt_dir "$CKPT_DIR" --batch_size 1 >/dev/null 2>&1; then gpu_column=1; fi
echo "[INFO] backend: $BACKEND; batch sizes: ${BATCH_SIZES[*]}; records in $EVAL_DIR"
mkdir -p "$EVAL_DIR"

bash "$REPO_ROOT/test/preprocess_data.sh"
# The card's pth column: PyTorch eager on the checkpoint, run and scored like every other backend.
# shellcheck disable=SC2154  # stamp: this run's start time, set with the settings in common.sh
pth_result="eval_pth_$stamp"
tinybert infer --runtime pytorch --model "$CKPT_DIR" --input "$(input_dirs)" --output "$RESULT_DIR" \
  --output_dirname "$pth_result" --outfmt "$OUTFMT" --batchsize "$PTH_BATCH_SIZE" --bucket_edges off
bash "$REPO_ROOT/test/postprocess_data.sh" "$pth_result" --json_out "$EVAL_DIR/pth_accuracy.json"
for bs in "${BATCH_SIZES[@]}"; do
  echo "[INFO] ===== batch size $bs ====="
  # The GPU paths run the checkpoint itself: nothing to export for them.
  [[ "$BACKEND" == gpu ]] || ORT_MODEL="$ORT_MODEL" bash "$REPO_ROOT/test/pth2onnx.sh" "$bs"
  if [[ "$BACKEND" == ais_bench && -n "$CHIP_NAME" ]]; then
    bash "$REPO_ROOT/test/onnx2om.sh" "$bs" "$CHIP_NAME"
  fi
  result_name="eval_bs${bs}_$stamp"
  ORT_MODEL="$accuracy_model" GPU_MODEL="$accuracy_gpu_model" OUTPUT_DIRNAME="$result_name" \
    bash "$REPO_ROOT/test/ais_inference.sh" "$bs"
  bash "$REPO_ROOT/test/postprocess_data.sh" "$result_name" --json_out "$EVAL_DIR/bs${bs}_accuracy.json"
  # The figures reach the table as JSON; ais_bench, which only prints them, through its line in the log.
  ORT_MODEL="$ORT_MODEL" GPU_MODEL="$GPU_MODEL" bash "$REPO_ROOT/test/perf.sh" "$bs" \
    --json_out "$EVAL_DIR/bs${bs}_perf.json" | tee "$EVAL_DIR/bs${bs}_perf.log"
  if ((gpu_column)); then
    GPU_MODEL=gpu-fp32 bash "$REPO_ROOT/test/perf_gpu.sh" "$bs" --json_out "$EVAL_DIR/bs${bs}_gpu_perf.json" |
      tee "$EVAL_DIR/bs${bs}_gpu_perf.log"
  fi
done

# On ONNX Runtime and the GPU each column's header names the path it ran.
paths=()
[[ "$BACKEND" != onnxruntime ]] || paths=(--accuracy_ort_model "$accuracy_model")
[[ "$BACKEND" != gpu ]] || paths=(--accuracy_ort_model "$accuracy_gpu_model")
tinybert report --eval_dir "$EVAL_DIR" --batch_sizes "${BATCH_SIZES[*]}" --backend "$BACKEND" --model_dir "$CKPT_DIR" \
  --ort_model "$ORT_MODEL" "${paths[@]}"
echo "[INFO] table saved to $EVAL_DIR/table.md and $EVAL_DIR/table.json"
