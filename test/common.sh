# shellcheck shell=bash
# Shared settings and helpers for test/*.sh (sourced, not run). Every setting can be overridden
# from the environment; defaults follow the model card, relative to the current directory.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
GLUE_DIR="${GLUE_DIR:-./glue_dir/SST-2}"          # holds dev.tsv
DATA_FILE="${DATA_FILE:-$GLUE_DIR/dev.tsv}"       # the TSV to preprocess
CKPT_DIR="${CKPT_DIR:-./SST-2_model}"             # TinyBERT checkpoint (config, weights, vocab)
BIN_DIR="${BIN_DIR:-./bert_bin}"                  # features written by preprocess_data.sh
MODEL_DIR="${MODEL_DIR:-.}"                       # where .onnx and .om files are written and read
RESULT_DIR="${RESULT_DIR:-./result}"              # root of inference result folders
SEQ_LEN="${SEQ_LEN:-64}"
OPSET="${OPSET:-11}"
BACKEND="${BACKEND:-auto}"                        # auto | ais_bench | onnxruntime | cann (ONNX Runtime on the NPU)
DEVICE="${DEVICE:-0}"                             # NPU device id: ais_bench --device, and BACKEND=cann
ORT_MODEL="${ORT_MODEL:-fast}"                    # ONNX Runtime model: fast (fused fp32) | int8 | static (the card's)
BUCKET_EDGES="${BUCKET_EDGES:-tight}"             # fast/int8 length buckets: tight | e.g. 16,32,48,64 | off
DYNAMIC_DIMS="${DYNAMIC_DIMS:-}"                  # Ascend gear model, e.g. 16,32,48,64 (empty: static, as the card)
OUTFMT="${OUTFMT:-TXT}"                           # TXT | BIN | NPY
PRECISION_MODE="${PRECISION_MODE:-force_fp16}"    # ATC --precision_mode
CANN_SET_ENV="${CANN_SET_ENV:-/usr/local/Ascend/ascend-toolkit/set_env.sh}"
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"

ENV_HELP="Settings (environment): GLUE_DIR DATA_FILE CKPT_DIR BIN_DIR MODEL_DIR RESULT_DIR SEQ_LEN OPSET BACKEND DEVICE ORT_MODEL BUCKET_EDGES DYNAMIC_DIMS OUTFMT PRECISION_MODE CANN_SET_ENV PYTHON"

die() { echo "[ERROR] $*" >&2; exit 2; }
missing_tool() { echo "[ERROR] $*" >&2; exit 3; }

# usage_or_help USAGE MIN_ARGS MAX_ARGS "$@": print USAGE on -h/--help or a wrong argument count.
usage_or_help() {
  local usage="$1" min="$2" max="$3"
  shift 3
  if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    printf 'usage: %s\n%s\n' "$usage" "$ENV_HELP"
    exit 0
  fi
  if (($# < min || $# > max)); then
    printf 'usage: %s\n%s\n' "$usage" "$ENV_HELP" >&2
    exit 2
  fi
}

require_batch_size() {
  [[ "$1" =~ ^[1-9][0-9]*$ ]] || die "expected a positive integer batch size, got '$1'"
}

# read_batch_sizes "$@": BATCH_SIZES = the arguments, each checked, or the model card's list.
read_batch_sizes() {
  local bs
  BATCH_SIZES=("$@")
  ((${#BATCH_SIZES[@]})) || BATCH_SIZES=(1 4 8 16 32 64)
  for bs in "${BATCH_SIZES[@]}"; do require_batch_size "$bs"; done
}

# start_inference_step BS: check BS, load CANN where installed, pick the backend (sets bs, backend).
start_inference_step() {
  bs="$1"
  require_batch_size "$bs"
  [[ "$DEVICE" =~ ^[0-9]+$ ]] || die "expected DEVICE to be an NPU id (0, 1, ...), got '$DEVICE'"
  source_cann
  # shellcheck disable=SC2034  # read by the calling script
  backend="$(resolve_backend "$bs")"
}

tinybert() { "$PYTHON" -m tinybert "$@"; }

input_dirs() { echo "$BIN_DIR/input_ids,$BIN_DIR/segment_ids,$BIN_DIR/input_mask"; }
sim_onnx_path() { echo "$MODEL_DIR/TinyBERT_sim_bs$1.onnx"; }
sim_dynamic_onnx_path() { echo "$MODEL_DIR/TinyBERT_sim_dynamic.onnx"; }
# The OM model for batch size $1: a gear model when DYNAMIC_DIMS is set.
om_path() {
  if [[ -n "$DYNAMIC_DIMS" ]]; then echo "$MODEL_DIR/TinyBERT_bs$1_dyn.om"; else echo "$MODEL_DIR/TinyBERT_bs$1.om"; fi
}

# The ONNX model ONNX Runtime runs for batch size $1, chosen by ORT_MODEL.
ort_model_path() {
  case "$ORT_MODEL" in
    fast) echo "$MODEL_DIR/TinyBERT_fast.onnx" ;;
    int8) echo "$MODEL_DIR/TinyBERT_int8.onnx" ;;
    static) sim_onnx_path "$1" ;;
    *) die "expected ORT_MODEL fast, int8 or static, got '$ORT_MODEL'" ;;
  esac
}

# gear_list "16,32,48,64" -> "16 32 48 64", checking each is a positive integer.
gear_list() {
  local gear gears=()
  IFS=', ' read -r -a gears <<<"$1"
  ((${#gears[@]} >= 2)) || die "expected at least two gears in DYNAMIC_DIMS (e.g. 16,32,48,64), got '$1'"
  for gear in "${gears[@]}"; do
    [[ "$gear" =~ ^[1-9][0-9]*$ ]] || die "expected positive integer gears in DYNAMIC_DIMS, got '$gear'"
  done
  echo "${gears[*]}"
}

# The CANN toolkit puts atc and the ais_bench runtime on PATH/PYTHONPATH via set_env.sh.
source_cann() {
  if [[ -f "$CANN_SET_ENV" ]]; then
    set +u
    # shellcheck disable=SC1090
    source "$CANN_SET_ENV"
    set -u
  fi
}

have_ais_bench() { "$PYTHON" -c "import ais_bench" >/dev/null 2>&1; }

ais_bench_missing() {
  missing_tool "ais_bench is not installed for $PYTHON (it needs an Ascend NPU with CANN; install it from https://gitee.com/ascend/tools/tree/master/ais-bench_workload/tool/ais_bench). Without an NPU use BACKEND=onnxruntime."
}

# resolve_backend BS: print the backend to use for batch size BS, or fail saying why.
resolve_backend() {
  local om
  om="$(om_path "$1")"
  case "$BACKEND" in
    auto)
      if have_ais_bench && [[ -f "$om" ]]; then echo ais_bench; else echo onnxruntime; fi ;;
    ais_bench)
      have_ais_bench || ais_bench_missing
      [[ -f "$om" ]] || die "$om: expected the OM model for batch size $1, found no such file (run test/onnx2om.sh $1 <chip_name>)"
      echo ais_bench ;;
    onnxruntime)
      echo onnxruntime ;;
    cann)
      echo cann ;;
    *)
      die "expected BACKEND auto, ais_bench, onnxruntime or cann, got '$BACKEND'" ;;
  esac
}
