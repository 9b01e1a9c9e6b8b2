"""Accuracy of an ais_bench-style result folder against the feature manifest. See --help."""

import sys

from tinybert.cli.main import run

if __name__ == "__main__":
    sys.exit(run("postprocess", prog="TinyBERT_postprocess_data.py"))
