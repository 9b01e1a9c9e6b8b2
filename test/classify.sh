#!/usr/bin/env bash
# Classify a corpus of any size: a TSV (SST-2 layout, or --column NAME|INDEX) or plain text, one sentence per
# line, into one TSV of index, label, p_negative, p_positive (--with_sentence adds the sentence), in input
# order. Streaming and resumable: a killed run is continued by the same command. ENGINE=ray runs it on Ray
# (RAY_ADDRESS joins a cluster). On a GPU the batch is GPU_CLASSIFY_BATCH unless CLASSIFY_BATCH is set, and
# TOKENIZE_WORKERS tokenizes ahead of the model. Options: python -m tinybert classify --help.
set -euo pipefail
# Before the settings fill in the defaults: whether CLASSIFY_BATCH was set (it then holds on a GPU too).
# shellcheck disable=SC2034  # read by the arguments below (batch_size's row: passed only when given)
batch_given="${CLASSIFY_BATCH:+yes}"
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage_or_help "bash test/classify.sh <input.tsv|input.txt> [--output FILE] [--overwrite] [--restart] [--with_sentence] [--format auto|tsv|text] [--column NAME|INDEX] [--label_column NAME|INDEX|none]" 1 100 "$@"

# The settings as classify's options (one table: tinybert/classify/options.py), first: options given after the input
# replace them.
eval "$(tinybert settings --arguments classify)"
# shellcheck disable=SC2154  # classify_settings: set by the eval above
tinybert classify "${classify_settings[@]}" "$@"
