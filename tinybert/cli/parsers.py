"""The step registry the command-line modules share: one parser per step, option helpers, defaults."""

from __future__ import annotations

import argparse

from tinybert.model.modeling import vocab_path
from tinybert.settings import defaults

DEFAULTS = defaults()  # the settings table: every default below comes from it
VOCAB_FILE = vocab_path(DEFAULTS["CKPT_DIR"])

class StepTable(dict):
    """One cli module's steps, name -> (function, help); cli.main joins the modules' tables."""

    def step(self, name: str, help_text: str):
        def register(func):
            self[name] = (func, help_text)
            return func
        return register

    def parser(self, name: str, prog: str | None) -> argparse.ArgumentParser:
        return argparse.ArgumentParser(prog=prog or f"python -m tinybert {name}", description=self[name][1],
                                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= `minimum`, else "expected <what>, got '<text>'"."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    parse.__name__ = what
    return parse


positive_int = int_at_least(1, "a positive integer")
non_negative_int = int_at_least(0, "a non-negative integer")



def batch_sizes(text: str) -> tuple[int, ...]:
    """An argparse type: batch sizes separated by spaces or commas, each a positive integer."""
    return tuple(positive_int(part) for part in text.replace(",", " ").split())
