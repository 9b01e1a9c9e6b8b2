#!/usr/bin/env bash
# Step 1: SST-2 dev.tsv -> $BIN_DIR/{input_ids,segment_ids,input_mask}/input{i}.bin + manifest.json
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/preprocess_data.sh [--overwrite]" 0 1 "$@"

"$PYTHON" "$REPO_ROOT/TinyBERT_preprocess_data.py" --input_file "$DATA_FILE" --vocab_file "$CKPT_DIR/vocab.txt" \
  --output_dir "$BIN_DIR" --max_seq_length "$SEQ_LEN" "$@"
