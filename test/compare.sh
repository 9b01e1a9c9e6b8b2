#!/usr/bin/env bash
# Hold two result folders (names inside $RESULT_DIR, or paths) of the features in $BIN_DIR against
# each other: logit differences, cosine similarity, agreement and flips, accuracy of each, NaN/inf
# outputs, and the samples that differ most with their sentences. E.g. NPU fp16 vs ONNX Runtime fp32.
# Exit 0 when compared; with --max_abs_diff / --min_agreement, exit 1 when a limit is exceeded (CI).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/compare.sh <result_a> <result_b> [--top N] [--json_out FILE] [--max_abs_diff X] [--min_agreement 0.99|99%]" 2 10 "$@"

tinybert compare "$1" "$2" --result_root "$RESULT_DIR" --bin_dir "$BIN_DIR" "${@:3}"
