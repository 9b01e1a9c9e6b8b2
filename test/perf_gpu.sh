#!/usr/bin/env bash
# GPU counterpart of the model card's T4 column, at the card's shape [bs, SEQ_LEN]: trtexec if installed, else
# ONNX Runtime's TensorRT/CUDA provider if available, else the PyTorch CUDA path (GPU_MODEL, fp32 by default), else
# a clear message that no GPU stack is present. Each prints the card's throughput line.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/perf_gpu.sh <batch_size> [--json_out FILE]   (GPU_MODEL, DEVICE: the PyTorch CUDA path)" 1 3 "$@"
bs="$1"
shift
require_batch_size "$bs"
onnx="$(model_path sim --batch_size "$bs")"
need_onnx() { [[ -f "$onnx" ]] || die "$onnx: expected the simplified ONNX model, found no such file (run test/pth2onnx.sh $bs)"; }

if command -v trtexec >/dev/null 2>&1; then
  need_onnx
  (($# == 0)) || echo "[INFO] trtexec writes no JSON: $* not passed on; its figures are the lines it prints"
  # TensorRT 10 replaced --workspace (the model card's flag) with --memPoolSize.
  if trtexec --help 2>&1 | grep -q -- '--workspace'; then workspace=(--workspace=5000); else workspace=(--memPoolSize=workspace:5000M); fi
  trtexec --onnx="$onnx" "${workspace[@]}" --threads
  exit 0
fi
providers="$("$PYTHON" -c 'import onnxruntime as o; print(",".join(p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in o.get_available_providers()))' 2>/dev/null || true)"
if [[ -n "$providers" ]]; then
  need_onnx
  echo "[INFO] backend: onnxruntime ($providers)"
  loop="$(backend_setting LOOP onnxruntime-gpu)"
  tinybert perf --model "$onnx" --batchsize "$bs" --loop "$loop" --seconds "$PERF_SECONDS" --repeats "$PERF_REPEATS" \
    --providers "$providers,CPUExecutionProvider" "$@"
  exit 0
fi
if ! why="$(tinybert backend --requested gpu --ckpt_dir "$CKPT_DIR" --batch_size "$bs" 2>&1 >/dev/null)"; then
  missing_tool "no GPU stack here: neither trtexec (TensorRT), onnxruntime-gpu with a CUDA or TensorRT provider, nor a CUDA device torch can use (${why#\[ERROR\] })"
fi
echo "[INFO] backend: gpu (PyTorch CUDA, GPU_MODEL=$GPU_MODEL)"
loop="$(backend_setting LOOP gpu)"
# No --bin_dir: the card's full-length [bs, SEQ_LEN] batch, as trtexec times the static model.
tinybert perf --backend gpu --gpu_model "$GPU_MODEL" --ckpt_dir "$CKPT_DIR" --device "$DEVICE" --batchsize "$bs" \
  --loop "$loop" --seconds "$PERF_SECONDS" --repeats "$PERF_REPEATS" "$@"
