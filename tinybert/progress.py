"""Progress bars on long loops: shown on a terminal, silent in logs and CI (tqdm's disable=None)."""

from __future__ import annotations


def progress(iterable, enabled: bool = True, **kwargs):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, disable=None, mininterval=0.5, **kwargs)
