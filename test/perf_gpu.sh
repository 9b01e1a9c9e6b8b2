#!/usr/bin/env bash
# GPU counterpart of the model card's T4 column: trtexec if installed, else ONNX Runtime's
# TensorRT/CUDA provider if available, else a clear message that no GPU stack is present.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/perf_gpu.sh <batch_size>" 1 1 "$@"
bs="$1"
require_batch_size "$bs"
onnx="$(model_path sim --batch_size "$bs")"
[[ -f "$onnx" ]] || die "$onnx: expected the simplified ONNX model, found no such file (run test/pth2onnx.sh $bs)"

if command -v trtexec >/dev/null 2>&1; then
  # TensorRT 10 replaced --workspace (the model card's flag) with --memPoolSize.
  if trtexec --help 2>&1 | grep -q -- '--workspace'; then workspace=(--workspace=5000); else workspace=(--memPoolSize=workspace:5000M); fi
  trtexec --onnx="$onnx" "${workspace[@]}" --threads
  exit 0
fi
providers="$("$PYTHON" -c 'import onnxruntime as o; print(",".join(p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in o.get_available_providers()))')"
[[ -n "$providers" ]] || missing_tool "no GPU stack here: neither trtexec (TensorRT) nor onnxruntime-gpu with a CUDA or TensorRT provider is installed"
echo "[INFO] backend: onnxruntime ($providers)"
loop="$(backend_setting LOOP onnxruntime-gpu)"
tinybert perf --model "$onnx" --batchsize "$bs" --loop "$loop" --seconds "$PERF_SECONDS" --repeats "$PERF_REPEATS" \
  --providers "$providers,CPUExecutionProvider"
