"""SST-2 dev.tsv -> bert_bin binary features (ModelZoo layout) + manifest. See --help."""

import sys

from tinybert.cli.main import run

if __name__ == "__main__":
    sys.exit(run("preprocess", prog="TinyBERT_preprocess_data.py"))
