# shellcheck shell=bash
# Shared settings and helpers for test/*.sh (sourced, not run). Every setting can be overridden from the
# environment. The defaults, each with its reason, are one table in the package (tinybert/settings.py:
# `python -m tinybert settings --markdown`); model file names and the backend choice come from the
# package too (`python -m tinybert paths`, `python -m tinybert backend`). Paths are relative to the
# current directory, as in the model card.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
# The one default spelled here: reading the table needs Python (its PYTHON row says the same).
PYTHON="${PYTHON:-python3}"
SCRIPT_NAME="$(basename "$0")"

die() { echo "[ERROR] $*" >&2; exit 2; }
missing_tool() { echo "[ERROR] $*" >&2; exit 3; }

tinybert() { "$PYTHON" -m tinybert "$@"; }

# Each setting this script reads (the shared ones and its own) from the environment, else its default;
# and `stamp`, this run's start time, which defaults such as EVAL_DIR refer to.
settings_code="$(tinybert settings --shell --script "$SCRIPT_NAME")" ||
  missing_tool "$PYTHON -m tinybert could not print the settings: set PYTHON to a Python 3 with requirements.txt installed"
eval "$settings_code"
unset settings_code

# The settings help under each usage line: what this script reads, with the defaults.
env_help() { tinybert settings --script "$SCRIPT_NAME"; }

# usage_or_help USAGE MIN_ARGS MAX_ARGS "$@": print USAGE on -h/--help or a wrong argument count.
usage_or_help() {
  local usage="$1" min="$2" max="$3"
  shift 3
  if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    printf 'usage: %s\n' "$usage"
    env_help
    exit 0
  fi
  if (($# < min || $# > max)); then
    { printf 'usage: %s\n' "$usage"; env_help; } >&2
    exit 2
  fi
}

require_batch_size() {
  [[ "$1" =~ ^[1-9][0-9]*$ ]] || die "expected a positive integer batch size, got '$1'"
}

# read_batch_sizes "$@": BATCH_SIZES becomes an array: the arguments, each checked, or the BATCH_SIZES setting.
read_batch_sizes() {
  local bs setting="$BATCH_SIZES"
  if (($#)); then BATCH_SIZES=("$@"); else read -r -a BATCH_SIZES <<<"$setting"; fi
  ((${#BATCH_SIZES[@]})) || die "expected batch sizes in BATCH_SIZES (e.g. '1 4 8'), got '$setting'"
  for bs in "${BATCH_SIZES[@]}"; do require_batch_size "$bs"; done
}

# start_inference_step BS: check BS, load CANN where installed, pick the backend (sets bs, backend).
start_inference_step() {
  bs="$1"
  require_batch_size "$bs"
  [[ "$DEVICE" =~ ^[0-9]+$ ]] || die "expected DEVICE to be an NPU or GPU id (0, 1, ...), got '$DEVICE'"
  source_cann
  # shellcheck disable=SC2034  # read by the calling script
  backend="$(choose_backend --batch_size "$bs")"
}

# choose_backend [--chip_name NAME] --batch_size BS...: the backend for BACKEND (the package's one rule,
# after source_cann): auto picks ais_bench where it is installed and its OM models exist or will be built, else
# gpu where torch sees a CUDA device, else onnxruntime; it says which and why on stderr.
choose_backend() {
  # shellcheck disable=SC2153  # BACKEND is a setting (see above), not a misspelt backend
  tinybert backend --requested="$BACKEND" --model_dir="$MODEL_DIR" --ort_model="$ORT_MODEL" \
    --dynamic_dims="$DYNAMIC_DIMS" --ckpt_dir="$CKPT_DIR" "$@"
}

# backend_setting NAME BACKEND: the setting from the environment, else its default on BACKEND (LOOP).
backend_setting() {
  if [[ -n "${!1}" ]]; then echo "${!1}"; else tinybert settings --get "$1" --backend "$2"; fi
}

# read_model_settings: model_settings becomes the settings that decide what a step runs, as options of the
# package's infer/perf (it applies those its backend takes: REQUESTS and CALL_TOKENS on the CPU paths, GPU_MODEL
# and CKPT_DIR on the GPU, DEVICE on the NPU and the GPU; CKPT_DIR and CALIB_FILE export a missing model).
read_model_settings() {
  # shellcheck disable=SC2034  # read by the calling script
  model_settings=(--model_dir "$MODEL_DIR" --ort_model "$ORT_MODEL" --dynamic_dims "$DYNAMIC_DIMS"
    --requests "$REQUESTS" --device "$DEVICE" --call_tokens "$CALL_TOKENS" --gpu_model "$GPU_MODEL"
    --ckpt_dir "$CKPT_DIR" --calibration_file "$CALIB_FILE" --calibration_samples "$CALIB_SAMPLES"
    --calibration_seed "$CALIB_SEED")
}

input_dirs() { echo "$BIN_DIR/input_ids,$BIN_DIR/segment_ids,$BIN_DIR/input_mask"; }

# model_path KIND [--batch_size BS]: a model file in MODEL_DIR (kinds: python -m tinybert paths --help).
model_path() {
  local kind="$1"
  shift
  tinybert paths "$kind" --model_dir="$MODEL_DIR" --ort_model="$ORT_MODEL" --dynamic_dims="$DYNAMIC_DIMS" "$@"
}

# om_path BS: the OM model ais_bench runs for batch size BS (a gear model when DYNAMIC_DIMS is set).
om_path() { model_path ais_bench --batch_size "$1"; }

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
