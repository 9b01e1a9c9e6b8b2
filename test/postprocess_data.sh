#!/usr/bin/env bash
# Step 5: accuracy of one result folder (a name inside $RESULT_DIR, or a path) over every sample.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/postprocess_data.sh <result_folder_name> [--json_out FILE] [--predictions_out FILE [--with_logits]]" 1 5 "$@"

"$PYTHON" "$REPO_ROOT/TinyBERT_postprocess_data.py" "$1" --result_root "$RESULT_DIR" --bin_dir "$BIN_DIR" "${@:2}"
