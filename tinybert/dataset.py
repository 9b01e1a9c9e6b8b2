"""Reading GLUE SST-2 TSV files (`dev.tsv`: sentence, label; `test.tsv`: index, sentence).

The GLUE reader uses no quote character, so a `"` is part of the sentence. Columns are found by
header name, so extra columns are tolerated; every row must have as many fields as the header.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field

from .errors import DataFormatError, expect

SENTENCE_COLUMN = "sentence"
LABEL_COLUMN = "label"
INDEX_COLUMN = "index"
VALID_LABELS = ("0", "1")


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


def read_sst2_tsv(path: str) -> Dataset:
    """Read an SST-2 style TSV; raise DataFormatError naming the file and line on bad input."""
    expect(os.path.isfile(path), DataFormatError,
           f"{path}: expected the SST-2 TSV file (e.g. glue_dir/SST-2/dev.tsv), found no such file")
    num_bytes = os.path.getsize(path)
    expect(num_bytes > 0, DataFormatError, f"{path}: expected a header line and sentences, got an empty file")
    try:
        # utf-8-sig drops a BOM; newline="" lets csv handle CRLF line endings.
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: expected UTF-8 text, got undecodable bytes at offset {exc.start}") from None
    except csv.Error as exc:
        raise DataFormatError(f"{path}: unreadable TSV ({exc})") from None

    header = [name.strip() for name in rows[0]] if rows else []
    expect(SENTENCE_COLUMN in header, DataFormatError,
           f"{path}: expected a header with a '{SENTENCE_COLUMN}' column (e.g. 'sentence<TAB>label'), "
           f"got {rows[0] if rows else 'nothing'!r}")
    sentence_col = header.index(SENTENCE_COLUMN)
    label_col = header.index(LABEL_COLUMN) if LABEL_COLUMN in header else None
    index_col = header.index(INDEX_COLUMN) if INDEX_COLUMN in header else None

    sentences: list[str] = []
    labels: list[int] = []
    ids: list[str] = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or row == [""]:
            # Blank lines are tolerated only at the end of the file (a trailing newline).
            if any(r and r != [""] for r in rows[line_no:]):
                raise DataFormatError(f"{path}:{line_no}: expected {len(header)} tab-separated fields, got a blank line")
            break
        expect(len(row) == len(header), DataFormatError,
               f"{path}:{line_no}: expected {len(header)} tab-separated fields ({', '.join(header)}), got {len(row)}")
        sentences.append(row[sentence_col])
        if label_col is not None:
            label = row[label_col].strip()
            expect(label in VALID_LABELS, DataFormatError,
                   f"{path}:{line_no}: expected label 0 or 1, got {row[label_col]!r}")
            labels.append(int(label))
        if index_col is not None:
            ids.append(row[index_col].strip())

    expect(len(sentences) > 0, DataFormatError, f"{path}: expected at least one sentence after the header, got none")
    return Dataset(
        path=path,
        sentences=sentences,
        labels=labels if label_col is not None else None,
        ids=ids if index_col is not None else None,
        sha256=file_sha256(path),
        num_bytes=num_bytes,
        header=header,
    )
