"""A corpus to classify (a TSV by column, or plain text) read as chunks of data lines cut by the file alone, so
every engine and every resume cuts the same chunks; unusable lines are counted and skipped, keeping indices."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from tinybert.data.tsv import (BOM, INDEX_COLUMN, LABEL_COLUMN, SENTENCE_COLUMN, BadLine, Columns, expect_distinct,
                               skipping_records, undecodable_byte)
from tinybert.errors import DataFormatError, UsageError, expect

FORMATS = ("auto", "tsv", "text")
BAD_EXAMPLES = 5  # bad lines described per chunk (and in the final report); the rest are counted
NO_LABELS = "none"  # --label_column none: a TSV whose `label` column is not SST-2's 0/1
SCAN_BLOCK = 1 << 20


@dataclass(frozen=True)
class Layout:
    """Where a line's sentence, label and index are."""

    format: str  # "tsv" or "text"
    header: tuple[str, ...] = ()
    sentence: int = 0
    label: int | None = None
    index: int | None = None

    @property
    def first_data_line(self) -> int:
        return 2 if self.format == "tsv" else 1

    @property
    def columns(self) -> Columns | None:
        """What the line reader splits a line into; None for plain text (the line is the sentence)."""
        return None if self.format == "text" else Columns(self.header, self.sentence, self.label, self.index)

    def describe(self) -> dict:
        name = lambda position: None if position is None else self.header[position]  # noqa: E731
        if self.format == "text":
            return {"format": "text"}
        return {"format": "tsv", "fields": len(self.header), "sentence_column": name(self.sentence),
                "label_column": name(self.label), "index_column": name(self.index)}


@dataclass(frozen=True)
class ChunkSpec:
    number: int
    first_line: int  # 1-based line of the file
    lines: int
    start: int  # byte range [start, end) of the file
    end: int
    sha256: str

    @property
    def last_line(self) -> int:
        return self.first_line + self.lines - 1


@dataclass
class ChunkPlan:
    path: str
    size: int
    lines: int  # data lines (the header excluded)
    chunks: list[ChunkSpec]


@dataclass
class ParsedChunk:
    sentences: list[str] = field(default_factory=list)
    labels: list[int] | None = None
    indices: list[str] = field(default_factory=list)
    bad: int = 0
    bad_examples: list[tuple[int, str]] = field(default_factory=list)


def _column(header: tuple[str, ...], wanted: str, path: str, option: str) -> int:
    if wanted.isdigit():
        position = int(wanted)
        expect(position < len(header), UsageError,
               f"{path}:1: expected a column index below {len(header)} ({option}), got {position}")
        return position
    expect(wanted in header, UsageError,
           f"{path}:1: expected a '{wanted}' column ({option} NAME or INDEX), the header has {', '.join(header)}")
    return header.index(wanted)


def _first_line(path: str, limit: int = 1 << 20) -> bytes:
    with open(path, "rb") as handle:
        return handle.readline(limit).rstrip(b"\r\n")


def _tsv_layout(path: str, column: str | None, label_column: str | None) -> Layout:
    line = _first_line(path)
    prefix = len(BOM) if line.startswith(BOM) else 0
    try:
        header = tuple(name.strip() for name in line[prefix:].decode("utf-8").split("\t"))
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}:1: expected a UTF-8 header line, got {undecodable_byte(line[prefix:], prefix)}") from None
    expect_distinct(path, header)
    sentence = _column(header, column or SENTENCE_COLUMN, path, "--column")
    if label_column == NO_LABELS:
        label = None
    elif label_column is not None:
        label = _column(header, label_column, path, "--label_column")
    else:
        label = header.index(LABEL_COLUMN) if LABEL_COLUMN in header else None
    index = header.index(INDEX_COLUMN) if INDEX_COLUMN in header else None
    expect(label != sentence, UsageError, f"{path}: expected different sentence and label columns, got "
                                          f"'{header[sentence]}' for both")
    return Layout("tsv", header, sentence, label, None if index in (sentence, label) else index)


def resolve_layout(path: str, fmt: str = "auto", column: str | None = None, label_column: str | None = None) -> Layout:
    """The input's layout: `auto` is TSV for a .tsv name, a --column, or a header line with a
    `sentence` column; plain text otherwise."""
    expect(fmt in FORMATS, UsageError, f"expected --format {', '.join(FORMATS)}, got {fmt!r}")
    expect(os.path.isfile(path), DataFormatError, f"{path}: expected a TSV or text file to classify, found no such file")
    expect(os.path.getsize(path) > 0, DataFormatError, f"{path}: expected sentences, got an empty file")
    if fmt == "auto":
        first = _first_line(path).removeprefix(BOM).split(b"\t")
        tsv = path.lower().endswith(".tsv") or column is not None or SENTENCE_COLUMN.encode() in (f.strip() for f in first)
        fmt = "tsv" if tsv else "text"
    if fmt == "text":
        expect(column is None and label_column is None, UsageError,
               "expected --column/--label_column only with TSV input, got them with --format text")
        return Layout("text")
    return _tsv_layout(path, column, label_column)


class _Cutter:
    """Cuts a byte stream into chunks of `per_chunk` lines, hashing each."""

    def __init__(self, start: int, first_line: int, per_chunk: int):
        self.per_chunk, self.offset, self.chunks, self.last = per_chunk, start, [], b"\n"
        self._open(start, first_line)

    def _open(self, start: int, first_line: int) -> None:
        self.start, self.first_line, self.lines, self.digest = start, first_line, 0, hashlib.sha256()

    def _close(self, end: int) -> None:
        self.chunks.append(ChunkSpec(number=len(self.chunks), first_line=self.first_line, lines=self.lines,
                                     start=self.start, end=end, sha256=self.digest.hexdigest()))
        self._open(end, self.first_line + self.lines)

    def feed(self, block: bytes) -> None:
        view, pos = memoryview(block), 0
        while pos < len(block):
            need, found = self.per_chunk - self.lines, block.count(b"\n", pos)
            if found < need:
                self.digest.update(view[pos:])
                self.lines += found
                break
            cut = pos
            for _ in range(need):
                cut = block.index(b"\n", cut) + 1
            self.digest.update(view[pos:cut])
            self.lines += need
            self._close(self.offset + cut)
            pos = cut
        self.offset += len(block)
        self.last = block[-1:] or self.last

    def finish(self) -> list[ChunkSpec]:
        if self.offset > self.start:  # the last line, with or without its newline
            self.lines += self.last != b"\n"
            self._close(self.offset)
        return self.chunks


def scan_chunks(path: str, layout: Layout, chunk_sentences: int) -> ChunkPlan:
    """Every chunk's line and byte range and sha256, in one streaming pass over the file."""
    expect(chunk_sentences > 0, UsageError, f"expected a positive number of sentences per chunk, got {chunk_sentences}")
    with open(path, "rb") as handle:
        header = handle.readline() if layout.format == "tsv" else b""
        cutter = _Cutter(len(header), layout.first_data_line, chunk_sentences)
        for block in iter(lambda: handle.read(SCAN_BLOCK), b""):
            cutter.feed(block)
        chunks = cutter.finish()
    expect(bool(chunks), DataFormatError, f"{path}: expected sentences after the header line, got none")
    return ChunkPlan(path, cutter.offset, sum(c.lines for c in chunks), chunks)


def read_chunk(path: str, spec: ChunkSpec) -> bytes:
    """The chunk's bytes, refused when the file changed since it was scanned."""
    with open(path, "rb") as handle:
        handle.seek(spec.start)
        raw = handle.read(spec.end - spec.start)
    expect(hashlib.sha256(raw).hexdigest() == spec.sha256, DataFormatError,
           f"{path}: lines {spec.first_line}-{spec.last_line} changed while the run was reading the file "
           f"(expected sha256 {spec.sha256[:12]}..., got other bytes); rerun when the file no longer changes")
    return raw


def parse_chunk(raw: bytes, spec: ChunkSpec, layout: Layout) -> ParsedChunk:
    """The usable lines of a chunk, with their output index; the others counted and described."""
    parsed = ParsedChunk(labels=[] if layout.label is not None else None)
    for line_no, values in skipping_records(raw, spec.first_line, spec.start, spec.lines, layout.columns):
        if isinstance(values, BadLine):
            parsed.bad += 1
            if len(parsed.bad_examples) < BAD_EXAMPLES:
                parsed.bad_examples.append((line_no, str(values)))
            continue
        sentence, label, index = values
        parsed.sentences.append(sentence)
        parsed.indices.append(index if index is not None else str(line_no - layout.first_data_line))
        if parsed.labels is not None:
            parsed.labels.append(label)
    return parsed
