#!/usr/bin/env bash
# Step 5: accuracy of one result folder (a name inside $RESULT_DIR, or a path) over every sample.
# NaN/inf outputs (an fp16 overflow) are refused, naming their files; --skip_nonfinite scores the rest.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/postprocess_data.sh <result_folder_name> [--json_out FILE] [--predictions_out FILE [--with_logits]] [--skip_nonfinite]" 1 6 "$@"

"$PYTHON" "$REPO_ROOT/TinyBERT_postprocess_data.py" "$1" --result_root "$RESULT_DIR" --bin_dir "$BIN_DIR" "${@:2}"
