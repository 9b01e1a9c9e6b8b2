"""Reading TSV and text lines in one of two modes: strict (an SST-2 file: the first bad line is an
error naming file and line) or skipping (a corpus: each bad line is described, and skipped)."""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass
from typing import Iterator

from tinybert.errors import DataFormatError, expect

SENTENCE_COLUMN = "sentence"
LABEL_COLUMN = "label"
INDEX_COLUMN = "index"
VALID_LABELS = ("0", "1")
BOM = codecs.BOM_UTF8
EMPTY_INDEX = f"expected a value in the '{INDEX_COLUMN}' column, got ''"


class BadLine(DataFormatError):
    """A line the reader cannot use: strict mode raises it with file and line, skipping mode counts it."""


@dataclass(frozen=True)
class Columns:
    """Where a TSV line's sentence, label and index are (label and index optional)."""

    header: tuple[str, ...]
    sentence: int
    label: int | None = None
    index: int | None = None


def undecodable_byte(data: bytes | str, offset: int = 0, with_line: bool = False) -> str | None:
    """Where the first non-UTF-8 byte of `data` (at byte `offset` of its file) is, or None; text keeps
    such bytes as lone surrogates, as Python reads them from stdin and argv."""
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError as exc:
            before = data[:exc.start]
            start, byte, newlines = len(before.encode("utf-8")), data[exc.start].encode("utf-8", "surrogateescape")[0], \
                before.count("\n")
        else:
            return None
    else:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            start, byte, newlines = exc.start, data[exc.start], data.count(b"\n", 0, exc.start)
        else:
            return None
    if with_line:
        return f"undecodable byte 0x{byte:02x} on line {newlines + 1} (byte offset {offset + start})"
    return f"undecodable byte 0x{byte:02x} at byte offset {offset + start}"


def expect_distinct(path: str, header) -> None:
    """A repeated column name makes "which one is the sentence?" a guess: refused, not picked."""
    repeated = sorted({name for name in header if header.count(name) > 1})
    expect(not repeated, DataFormatError,
           f"{path}:1: expected distinct column names, got {', '.join(map(repr, repeated))} more than once")


def row_values(fields: list[str], columns: Columns, skipping: bool) -> tuple[str, int | None, str | None]:
    """(sentence, label, index) of one line's fields, else BadLine; skipping mode also refuses an empty
    sentence or index, strict mode names the columns (its file's indices are checked as a whole)."""
    header = columns.header
    if len(fields) != len(header):
        names = "" if skipping else f" ({', '.join(header)})"
        raise BadLine(f"expected {len(header)} tab-separated fields{names}, got {len(fields)}")
    sentence = fields[columns.sentence]
    if skipping and not sentence.strip():
        raise BadLine("empty sentence")
    label = index = None
    if columns.label is not None:
        value = fields[columns.label].strip()
        if value not in VALID_LABELS:
            raise BadLine(f"expected label 0 or 1, got {fields[columns.label]!r}")
        label = int(value)
    if columns.index is not None:
        index = fields[columns.index].strip()
        if skipping and not index:
            raise BadLine(EMPTY_INDEX)
    return sentence, label, index


# ---------------------------------------------------------------- strict mode

def strict_rows(path: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every line, csv's way (LF, CRLF or CR; a BOM dropped; no quoting); a
    non-UTF-8 byte or an unreadable line is a DataFormatError naming the file and line."""
    reader = None
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            yield from enumerate(reader, start=1)
    except UnicodeDecodeError:
        with open(path, "rb") as handle:
            where = undecodable_byte(handle.read(), with_line=True) or "undecodable bytes"
        raise DataFormatError(f"{path}: expected UTF-8 text, got {where}") from None
    except csv.Error as exc:
        raise DataFormatError(f"{path}:{reader.line_num}: unreadable TSV ({exc})") from None


def strict_records(path: str, rows, columns: Columns) -> Iterator[tuple[int, tuple[str, int | None, str | None]]]:
    """(line, row_values) of `rows` after the header; blank lines only at the end (a trailing newline),
    and the first bad line a DataFormatError naming file and line."""
    first_blank = None
    for line_no, fields in rows:
        if not fields or fields == [""]:
            first_blank = first_blank or line_no
            continue
        expect(first_blank is None, DataFormatError,
               f"{path}:{first_blank}: expected {len(columns.header)} tab-separated fields, got a blank line")
        try:
            values = row_values(fields, columns, skipping=False)
        except BadLine as bad:
            raise DataFormatError(f"{path}:{line_no}: {bad}") from None
        yield line_no, values


# ---------------------------------------------------------------- skipping mode

def _line_values(line: bytes, offset: int, columns: Columns | None) -> tuple[str, int | None, str | None]:
    if not line.strip():
        raise BadLine("empty line")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise BadLine(f"not UTF-8 ({undecodable_byte(line, offset)})") from None
    if columns is None:
        return text, None, None
    return row_values(text.split("\t"), columns, skipping=True)


def skipping_records(raw: bytes, first_line: int, offset: int, count: int, columns: Columns | None):
    """(line, row_values or BadLine) of the `count` lines of `raw`, the file's bytes from `offset` on,
    starting at line `first_line`: LF or CRLF endings, a BOM dropped on line 1; `columns` None: plain text."""
    for number, line in enumerate(raw.split(b"\n")[:count]):
        line_no, start = first_line + number, offset
        offset += len(line) + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if line_no == 1 and line.startswith(BOM):
            line, start = line[len(BOM):], start + len(BOM)
        try:
            values = _line_values(line, start, columns)
        except BadLine as bad:
            values = bad
        yield line_no, values
