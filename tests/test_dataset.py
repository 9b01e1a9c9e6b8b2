"""Reading SST-2 TSV files: the genuine dev set, the file variants people really have (line endings,
BOM, column layouts), and bad or hostile files refused naming the file and line."""

from __future__ import annotations

import pytest
from conftest import AWKWARD_ROWS, SHARED_COUNT, SHARED_TSV, tsv_bytes

from tinybert.data.dataset import read_sst2_tsv
from tinybert.errors import DataFormatError
from tinybert.data.features import preprocess


def test_genuine_dev_set_is_read_completely():
    if not SHARED_TSV.is_file():
        pytest.skip("../shared/data/SST-2/dev.tsv is not beside this checkout")
    dataset = read_sst2_tsv(str(SHARED_TSV))
    assert len(dataset) == SHARED_COUNT == 872
    assert dataset.sha256 == "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"
    assert sorted(set(dataset.labels)) == [0, 1]
    assert dataset.sentences[0] == "it 's a charming and often affecting journey . "


VARIANTS = {
    "plain": tsv_bytes(AWKWARD_ROWS),
    "crlf": tsv_bytes(AWKWARD_ROWS, newline="\r\n"),
    "cr_only": tsv_bytes(AWKWARD_ROWS, newline="\r"),
    "bom": tsv_bytes(AWKWARD_ROWS, bom=True),
    "bom_crlf_blank_tail": tsv_bytes(AWKWARD_ROWS, newline="\r\n", bom=True, trailing="\r\n\r\n"),
    "trailing_blank_lines": tsv_bytes(AWKWARD_ROWS, trailing="\n\n"),
    "no_final_newline": tsv_bytes(AWKWARD_ROWS)[:-1],
    "extra_columns": tsv_bytes([("x1", s, "src", label) for s, label in AWKWARD_ROWS],
                               header=("id", "sentence", "source", "label")),
    "reordered_columns": tsv_bytes([(label, s) for s, label in AWKWARD_ROWS], header=("label", "sentence")),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_file_variants_give_the_sentences_and_features_of_the_clean_file(small_inputs, awkward_manifest, tmp_path,
                                                                        variant):
    """Quotes stay text (no quoting), accents, CJK and the empty sentence are kept verbatim."""
    path = tmp_path / "dev.tsv"
    path.write_bytes(VARIANTS[variant])
    dataset = read_sst2_tsv(str(path))
    assert dataset.sentences == [s for s, _ in AWKWARD_ROWS]
    assert dataset.labels == [int(label) for _, label in AWKWARD_ROWS] and dataset.ids is None
    manifest = preprocess(str(path), str(small_inputs.checkpoint / "vocab.txt"), str(tmp_path / "bin"), 64,
                          progress=False)
    assert manifest["features_sha256"] == awkward_manifest["features_sha256"]
    assert manifest["labels"] == awkward_manifest["labels"] and manifest["num_samples"] == len(AWKWARD_ROWS)


def test_unlabelled_files_keep_their_index_column(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_bytes(tsv_bytes([("1031", "a great film"), ("7", " boring ")], header=("index", "sentence"),
                               newline="\r\n"))
    dataset = read_sst2_tsv(str(path))
    assert dataset.sentences == ["a great film", " boring "] and dataset.labels is None and dataset.ids == ["1031", "7"]


@pytest.mark.parametrize("content, fragment", [
    (b"", "expected a header line and sentences, got an empty file"),
    (b"text\tlabel\nfine \t1\n", "expected a header with a 'sentence' column"),
    (b"sentence\tlabel\ngood \t1\nbad\n", ":3: expected 2 tab-separated fields (sentence, label), got 1"),
    (b"sentence\tlabel\ngood \t1\nbad \t2\n", ":3: expected label 0 or 1, got '2'"),
    (b"sentence\tlabel\n", "expected at least one sentence after the header, got none"),
    (b"sentence\tlabel\ngood \t1\n\nbad \t0\n", ":3: expected 2 tab-separated fields, got a blank line"),
    ("sentence\tlabel\ncaf\xe9 ok \t1\n".encode("latin-1"), "expected UTF-8 text, got undecodable byte 0xe9 on line 2"),
    ("sentence\tlabel\ngood \t1\n".encode("utf-16"), "expected UTF-8 text"),
    (b"sentence\tsentence\tlabel\na\tb\t1\n", "expected distinct column names, got 'sentence'"),
    (b"index\tsentence\n0\tgood\n1\tbad\n0\tfine\n", ":4: expected a unique 'index', got '0' again (first on line 2)"),
    (b"index\tsentence\n0\tgood\n\tbad\n", ":3: expected a value in the 'index' column"),
    (b"sentence\tlabel\na tab\tinside\t1\n", ":2: expected 2 tab-separated fields (sentence, label), got 3"),
    (b"sentence\tlabel\n" + b"x" * 200_000 + b"\t1\n", ":2: unreadable TSV (field larger than field limit"),
    (None, "expected the SST-2 TSV file (e.g. glue_dir/SST-2/dev.tsv), found no such file"),
], ids=["empty", "no_sentence_column", "missing_field", "bad_label", "header_only", "blank_line_inside", "latin1",
        "utf16", "duplicate_columns", "duplicate_index", "empty_index", "tab_in_sentence", "huge_field", "missing"])
def test_bad_files_are_refused_naming_file_and_line(tmp_path, content, fragment):
    path = tmp_path / "dev.tsv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataFormatError) as info:
        read_sst2_tsv(str(path))
    assert str(info.value).startswith(str(path)) and fragment in str(info.value)


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
@pytest.mark.parametrize("into", [0, 1, 3])
def test_an_undecodable_byte_is_named_at_its_own_offset(tmp_path, bom, into):
    """The issue's file: 0xe9 three bytes into a line ("caf\\xe9"), after a BOM: the utf-8-sig codec counts
    offsets after the BOM, which named the line's first byte (0x63 'c') 3 bytes early, or the line before."""
    text = b"sentence\tlabel\nfine words \t1\n"
    line = b"caf"[:into] + b"\xe9" + b" au lait \t1\n"
    path = tmp_path / "dev.tsv"
    path.write_bytes(bom + text + line + b"more \t0\n")
    offset = len(bom + text) + into
    with pytest.raises(DataFormatError, match=f"undecodable byte 0xe9 on line 3 \\(byte offset {offset}\\)$"):
        read_sst2_tsv(str(path))
