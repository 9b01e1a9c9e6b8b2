"""The step registry the command-line modules share: one parser per step, option helpers, defaults."""

from __future__ import annotations

import argparse

from .modeling import vocab_path
from .settings import defaults

DEFAULTS = defaults()  # the settings table: every default below comes from it
VOCAB_FILE = vocab_path(DEFAULTS["CKPT_DIR"])

STEPS = {}


def step(name: str, help_text: str):
    def register(func):
        STEPS[name] = (func, help_text)
        return func
    return register


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _parser(name: str, description: str, prog: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog or f"python -m tinybert {name}", description=description,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
