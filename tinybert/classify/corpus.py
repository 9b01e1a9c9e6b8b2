"""A corpus to classify (a TSV by column, or plain text) read as chunks of data lines cut by the file alone, so
every engine and every resume cuts the same chunks; unusable lines are counted and skipped, keeping indices."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from tinybert.data.dataset import INDEX_COLUMN, LABEL_COLUMN, SENTENCE_COLUMN, VALID_LABELS
from tinybert.errors import DataFormatError, UsageError, expect

FORMATS = ("auto", "tsv", "text")
BOM = b"\xef\xbb\xbf"
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


class _BadLine(Exception):
    pass


def _undecodable(data: bytes, offset: int) -> str:
    """Where the first non-UTF-8 byte of `data` (which starts at file offset `offset`) is."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"undecodable byte 0x{data[exc.start]:02x} at byte offset {offset + exc.start}"
    return "valid UTF-8"


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
        raise DataFormatError(f"{path}:1: expected a UTF-8 header line, got {_undecodable(line[prefix:], prefix)}") from None
    repeated = sorted({name for name in header if header.count(name) > 1})
    expect(not repeated, DataFormatError, f"{path}:1: expected distinct column names, got {', '.join(map(repr, repeated))} "
                                          "more than once")
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
        self.chunks.append(ChunkSpec(len(self.chunks), self.first_line, self.lines, self.start, end,
                                     self.digest.hexdigest()))
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


def _parse_line(line: bytes, offset: int, layout: Layout) -> tuple[str, int | None, str | None]:
    """(sentence, label, index) of one line without its newline; `_BadLine(reason)` when unusable."""
    if not line.strip():
        raise _BadLine("empty line")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadLine(f"not UTF-8 ({_undecodable(line, offset)})") from None
    if layout.format == "text":
        return text, None, None
    fields = text.split("\t")
    if len(fields) != len(layout.header):
        raise _BadLine(f"expected {len(layout.header)} tab-separated fields, got {len(fields)}")
    if not fields[layout.sentence].strip():
        raise _BadLine("empty sentence")
    label = None
    if layout.label is not None:
        value = fields[layout.label].strip()
        if value not in VALID_LABELS:
            raise _BadLine(f"expected label 0 or 1, got {fields[layout.label]!r}")
        label = int(value)
    index = None
    if layout.index is not None:
        index = fields[layout.index].strip()
        if not index:
            raise _BadLine(f"expected a value in the '{INDEX_COLUMN}' column, got ''")
    return fields[layout.sentence], label, index


def parse_chunk(raw: bytes, spec: ChunkSpec, layout: Layout) -> ParsedChunk:
    """The usable lines of a chunk, with their output index; the others counted and described."""
    parsed = ParsedChunk(labels=[] if layout.label is not None else None)
    offset = spec.start
    for number, line in enumerate(raw.split(b"\n")[:spec.lines]):
        line_no, size = spec.first_line + number, len(line) + 1
        start = offset
        if line.endswith(b"\r"):
            line = line[:-1]
        if line_no == 1 and line.startswith(BOM):
            line, start = line[len(BOM):], start + len(BOM)
        offset += size
        try:
            sentence, label, index = _parse_line(line, start, layout)
        except _BadLine as bad:
            parsed.bad += 1
            if len(parsed.bad_examples) < BAD_EXAMPLES:
                parsed.bad_examples.append((line_no, str(bad)))
            continue
        parsed.sentences.append(sentence)
        parsed.indices.append(index if index is not None else str(line_no - layout.first_data_line))
        if parsed.labels is not None:
            parsed.labels.append(label)
    return parsed
