"""TinyBERT .pth checkpoint -> TinyBERT_bs{bs}.onnx and TinyBERT_sim_bs{bs}.onnx. See --help."""

import sys

from tinybert.cli.main import run

if __name__ == "__main__":
    sys.exit(run("export", prog="TinyBERT_pth2onnx.py"))
