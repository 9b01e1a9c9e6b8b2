"""Reading GLUE SST-2 TSV files (`dev.tsv`: sentence, label; `test.tsv`: index, sentence) as GLUE reads them:
no quote character, columns by header name, every row as many fields as the header."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from tinybert.data.tsv import (EMPTY_INDEX, INDEX_COLUMN, LABEL_COLUMN, SENTENCE_COLUMN, Columns, expect_distinct,
                               strict_records, strict_rows)
from tinybert.errors import DataFormatError, expect


@dataclass
class Dataset:
    """Sentences of one TSV file, in file order, with labels when the file has them."""

    path: str
    sentences: list[str]
    labels: list[int] | None
    ids: list[str] | None = None  # the `index` column of unlabelled GLUE files
    sha256: str = ""
    num_bytes: int = 0
    header: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sentences)


def file_sha256(path: str, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _header_columns(path: str, first_row: list[str] | None) -> Columns:
    """The header's column names and where sentence, label and index are (the last two optional)."""
    header = tuple(name.strip() for name in first_row) if first_row else ()
    expect(SENTENCE_COLUMN in header, DataFormatError,
           f"{path}: expected a header with a '{SENTENCE_COLUMN}' column (e.g. 'sentence<TAB>label'), "
           f"got {first_row if first_row else 'nothing'!r}")
    expect_distinct(path, header)
    position = {name: i for i, name in enumerate(header)}
    return Columns(header, position[SENTENCE_COLUMN], position.get(LABEL_COLUMN), position.get(INDEX_COLUMN))


def _check_ids(path: str, ids: list[str], first_line: int = 2) -> None:
    """GLUE submissions are keyed by `index`: an empty or repeated one would mis-assign predictions."""
    seen: dict[str, int] = {}
    for line_no, sample_id in enumerate(ids, start=first_line):
        expect(sample_id != "", DataFormatError, f"{path}:{line_no}: {EMPTY_INDEX}")
        expect(sample_id not in seen, DataFormatError,
               f"{path}:{line_no}: expected a unique '{INDEX_COLUMN}', got {sample_id!r} again (first on line {seen.get(sample_id)})")
        seen[sample_id] = line_no


def read_sst2_tsv(path: str) -> Dataset:
    """Read an SST-2 style TSV (CRLF/CR endings, a BOM, trailing blank lines accepted); raise DataFormatError
    naming the file and line for a blank line between sentences, a wrong field count or a bad label."""
    expect(os.path.isfile(path), DataFormatError,
           f"{path}: expected the SST-2 TSV file (e.g. glue_dir/SST-2/dev.tsv), found no such file")
    num_bytes = os.path.getsize(path)
    expect(num_bytes > 0, DataFormatError, f"{path}: expected a header line and sentences, got an empty file")
    sentences: list[str] = []
    labels: list[int] = []
    ids: list[str] = []
    rows = strict_rows(path)
    columns = _header_columns(path, next(rows, (1, None))[1])
    for _, (sentence, label, index) in strict_records(path, rows, columns):
        sentences.append(sentence)
        if columns.label is not None:
            labels.append(label)
        if columns.index is not None:
            ids.append(index)

    expect(len(sentences) > 0, DataFormatError, f"{path}: expected at least one sentence after the header, got none")
    if columns.index is not None:
        _check_ids(path, ids)
    return Dataset(
        path=path,
        sentences=sentences,
        labels=labels if columns.label is not None else None,
        ids=ids if columns.index is not None else None,
        sha256=file_sha256(path),
        num_bytes=num_bytes,
        header=list(columns.header),
    )
