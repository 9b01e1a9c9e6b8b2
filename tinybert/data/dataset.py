"""Reading GLUE SST-2 TSV files (`dev.tsv`: sentence, label; `test.tsv`: index, sentence) as GLUE reads them:
no quote character, columns by header name, every row as many fields as the header."""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
from dataclasses import dataclass, field

from tinybert.errors import DataFormatError, expect

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


def _header_columns(path: str, first_row: list[str] | None) -> tuple[list[str], int, int | None, int | None]:
    """Column names and the positions of sentence, label and index (the last two optional)."""
    header = [name.strip() for name in first_row] if first_row else []
    expect(SENTENCE_COLUMN in header, DataFormatError,
           f"{path}: expected a header with a '{SENTENCE_COLUMN}' column (e.g. 'sentence<TAB>label'), "
           f"got {first_row if first_row else 'nothing'!r}")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    # A repeated column name makes "which one is the sentence?" a guess: refuse rather than pick one.
    expect(not duplicated, DataFormatError,
           f"{path}:1: expected distinct column names, got {', '.join(map(repr, duplicated))} more than once")
    position = {name: i for i, name in enumerate(header)}
    return header, position[SENTENCE_COLUMN], position.get(LABEL_COLUMN), position.get(INDEX_COLUMN)


def _check_ids(path: str, ids: list[str], first_line: int = 2) -> None:
    """GLUE submissions are keyed by `index`: an empty or repeated one would mis-assign predictions."""
    seen: dict[str, int] = {}
    for line_no, sample_id in enumerate(ids, start=first_line):
        expect(sample_id != "", DataFormatError, f"{path}:{line_no}: expected a value in the '{INDEX_COLUMN}' column, got ''")
        expect(sample_id not in seen, DataFormatError,
               f"{path}:{line_no}: expected a unique '{INDEX_COLUMN}', got {sample_id!r} again (first on line {seen.get(sample_id)})")
        seen[sample_id] = line_no


def _first_undecodable(path: str) -> str:
    """Where the first non-UTF-8 byte is (the decoder only knows its offset in a buffer); the BOM is skipped
    by hand, since utf-8-sig counts offsets after it."""
    with open(path, "rb") as handle:
        data = handle.read()
    skip = 3 if data.startswith(codecs.BOM_UTF8) else 0
    try:
        data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        line = data.count(b"\n", 0, offset) + 1
        return f"undecodable byte 0x{data[offset]:02x} on line {line} (byte offset {offset})"
    return "undecodable bytes"


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
    reader = None
    try:
        # utf-8-sig drops a BOM; newline="" lets csv handle CRLF line endings. Rows are streamed.
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            header, sentence_col, label_col, index_col = _header_columns(path, next(reader, None))
            first_blank = None
            for line_no, row in enumerate(reader, start=2):
                if not row or row == [""]:
                    # Blank lines are tolerated only at the end of the file (a trailing newline).
                    first_blank = first_blank or line_no
                    continue
                expect(first_blank is None, DataFormatError,
                       f"{path}:{first_blank}: expected {len(header)} tab-separated fields, got a blank line")
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
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: expected UTF-8 text, got {_first_undecodable(path)}") from None
    except csv.Error as exc:
        raise DataFormatError(f"{path}:{reader.line_num}: unreadable TSV ({exc})") from None

    expect(len(sentences) > 0, DataFormatError, f"{path}: expected at least one sentence after the header, got none")
    if index_col is not None:
        _check_ids(path, ids)
    return Dataset(
        path=path,
        sentences=sentences,
        labels=labels if label_col is not None else None,
        ids=ids if index_col is not None else None,
        sha256=file_sha256(path),
        num_bytes=num_bytes,
        header=header,
    )
