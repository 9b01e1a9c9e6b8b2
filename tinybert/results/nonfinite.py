"""Non-finite logits (NaN, +-inf), what an fp16 overflow on the NPU writes: argmax gives them a meaningless
class, so they are counted and their files named, and the caller decides (postprocess refuses by default)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

SHOWN_FILES = 5  # how many file names a message lists


def nonfinite_rows(logits: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows that hold at least one NaN or infinite value."""
    return ~np.isfinite(np.asarray(logits)).all(axis=1)


def output_names(folder: str, stems: list[str]) -> list[str]:
    """The output file of each stem as it is in `folder` (`<stem>_0.<txt|bin|npy>`)."""
    extension = next((ext for ext in ("txt", "bin", "npy")
                      if stems and os.path.isfile(os.path.join(folder, f"{stems[0]}_0.{ext}"))), "txt")
    return [f"{stem}_0.{extension}" for stem in stems]


@dataclass
class NonFinite:
    """The non-finite outputs of one result folder."""

    folder: str
    total: int
    rows: list[int] = field(default_factory=list)  # sample indices
    files: list[str] = field(default_factory=list)  # their output file names in the folder
    nan: int = 0  # rows with a NaN
    inf: int = 0  # rows with an infinity and no NaN

    @property
    def count(self) -> int:
        return len(self.rows)

    def shown_files(self, limit: int = SHOWN_FILES) -> str:
        more = f" ... ({self.count} in all)" if self.count > limit else ""
        return ", ".join(self.files[:limit]) + more

    def describe(self) -> str:
        """e.g. '3 of 872 outputs (NaN 2, inf 1): input5_0.txt, input9_0.txt, input12_0.txt'"""
        return f"{self.count} of {self.total} outputs (NaN {self.nan}, inf {self.inf}): {self.shown_files()}"

    def as_dict(self) -> dict:
        return {"count": self.count, "of": self.total, "nan": self.nan, "inf": self.inf,
                "samples": self.rows, "files": self.files}


def find_nonfinite(folder: str, stems: list[str], logits: np.ndarray) -> NonFinite:
    logits = np.asarray(logits)
    mask = nonfinite_rows(logits)
    rows = np.flatnonzero(mask).tolist()
    names = output_names(folder, stems)
    with_nan = int(np.isnan(logits).any(axis=1).sum())
    return NonFinite(folder, len(logits), rows=rows, files=[names[i] for i in rows], nan=with_nan,
                     inf=len(rows) - with_nan)
