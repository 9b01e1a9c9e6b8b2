"""Progress bars on long loops: shown on a terminal, silent in logs and CI (tqdm's disable=None)."""

from __future__ import annotations


def progress(iterable=None, enabled: bool = True, **kwargs):
    """A tqdm bar (iterate over it, or call .update/.close when iterable is None)."""
    from tqdm import tqdm

    return tqdm(iterable, disable=None if enabled else True, mininterval=0.5, **kwargs)
