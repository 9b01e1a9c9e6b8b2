"""Property-based tests: random TSV content round-trips through the reader whatever the line endings,
BOM and column layout; damaged TSVs are refused at the right line; random logits round-trip through
the result-folder writer and reader in every format; truncated or padded output files are refused."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from conftest import publish
from hypothesis import strategies as st

from tinybert.data.dataset import read_sst2_tsv
from tinybert.errors import DataFormatError, ResultFolderError
from tinybert.results.provenance import check_provenance
from tinybert.results.resultdir import FORMATS, read_logits

SETTINGS = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Anything a sentence may hold: every character except the TSV's own field and line separators.
sentence_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\r\n"), max_size=40)
labels = st.sampled_from(["0", "1", " 0", "1 "])
rows = st.lists(st.tuples(sentence_text, labels), min_size=1, max_size=12)


def _write(data: bytes) -> str:
    handle, path = tempfile.mkstemp(suffix=".tsv")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    return path


def _layout(rows, newline, bom, trailing, layout):
    """A TSV with the given rows in one of three column layouts (dev.tsv, reordered, extra columns)."""
    header = {"dev": ["sentence", "label"], "reordered": ["label", "sentence"],
              "extra": ["index", "label", "note", "sentence"]}[layout]
    lines = []
    for number, (sentence, label) in enumerate(rows):
        fields = {"sentence": sentence, "label": label, "index": str(number), "note": "x\"y"}
        lines.append("\t".join(fields[name] for name in header))
    text = newline.join(["\t".join(header), *lines]) + (newline if trailing else "")
    return ("\ufeff" if bom else "") + text


@SETTINGS
@given(rows=rows, newline=st.sampled_from(["\n", "\r\n", "\r"]), bom=st.booleans(), trailing=st.booleans(),
       layout=st.sampled_from(["dev", "reordered", "extra"]))
def test_tsv_content_round_trips(rows, newline, bom, trailing, layout):
    # A one-line file without labels would read a lone empty sentence as a blank line; labels avoid that.
    path = _write(_layout(rows, newline, bom, trailing, layout).encode("utf-8"))
    try:
        dataset = read_sst2_tsv(path)
    finally:
        os.unlink(path)
    assert dataset.sentences == [sentence for sentence, _ in rows]
    assert dataset.labels == [int(label) for _, label in rows]
    assert dataset.ids == (None if layout != "extra" else [str(i) for i in range(len(rows))])


@SETTINGS
@given(rows=rows, data=st.data())
def test_damaged_tsv_is_refused_at_the_damaged_line(rows, data):
    lines = ["sentence\tlabel", *("\t".join(row) for row in rows)]
    target = data.draw(st.integers(1, len(lines) - 1), label="row")
    damage = data.draw(st.sampled_from(["extra_tab", "bad_label", "blank_line_before", "cut_inside", "latin1"]))
    sentence, label = rows[target - 1]
    if damage == "extra_tab":
        lines[target] = f"{sentence}\tmore\t{label}"
        fragment = "expected 2 tab-separated fields"
    elif damage == "bad_label":
        bad = data.draw(st.text(max_size=3).filter(lambda t: t.strip() not in ("0", "1") and not set(t) & set("\t\r\n")))
        lines[target] = f"{sentence}\t{bad}"
        fragment = "expected label 0 or 1"
    elif damage == "blank_line_before":
        lines.insert(target, "")
        fragment = "got a blank line"
    elif damage == "cut_inside":
        # A file truncated inside a row: the cut falls before the end of its label.
        lines = lines[:target + 1]
        cut = data.draw(st.integers(0, len(lines[target]) - 1 - len(label.rstrip())))
        lines[target] = lines[target][:cut]
        assume(lines[target] != "")  # a cut at the row start is a shorter, well-formed file
        # Cut in the sentence: one field left; cut after the tab: the label is gone.
        fragment = ("expected label 0 or 1, got ''" if "\t" in lines[target]
                    else "expected 2 tab-separated fields (sentence, label), got 1")
    else:
        raw = "\n".join(lines).encode("utf-8") + b"\n"
        offset = len("\n".join(lines[:target]).encode("utf-8")) + 1
        path = _write(raw[:offset] + b"\xe9" + raw[offset:])
        with pytest.raises(DataFormatError, match=f"on line {target + 1} "):
            try:
                read_sst2_tsv(path)
            finally:
                os.unlink(path)
        return
    path = _write(("\n".join(lines) + ("\n" if damage != "cut_inside" else "")).encode("utf-8"))
    try:
        with pytest.raises(DataFormatError) as info:
            read_sst2_tsv(path)
    finally:
        os.unlink(path)
    assert f"{path}:{target + 1}:" in str(info.value) and fragment in str(info.value)


logits_arrays = st.integers(1, 12).flatmap(lambda n: st.lists(
    st.tuples(*(st.floats(-1e4, 1e4, width=32, allow_subnormal=False),) * 2), min_size=n, max_size=n))


@SETTINGS
@given(values=logits_arrays, outfmt=st.sampled_from(FORMATS))
def test_result_folders_round_trip(values, outfmt):
    logits = np.asarray(values, dtype=np.float32)
    with tempfile.TemporaryDirectory() as root:
        folder = publish(root, outfmt, logits, dirname="run")
        read = read_logits(folder, [f"input{i}" for i in range(len(logits))])
    # TXT keeps six decimals (%f), BIN and NPY the exact float32 values.
    np.testing.assert_allclose(read, logits, rtol=0, atol=6e-7 if outfmt == "TXT" else 0)


@SETTINGS
@given(values=logits_arrays, outfmt=st.sampled_from(FORMATS), data=st.data())
def test_truncated_or_padded_outputs_are_refused(values, outfmt, data):
    logits = np.asarray(values, dtype=np.float32)
    with tempfile.TemporaryDirectory() as root:
        folder = publish(root, outfmt, logits, dirname="run")
        victim = os.path.join(folder, f"input{data.draw(st.integers(0, len(logits) - 1))}_0.{outfmt.lower()}")
        with open(victim, "rb") as handle:
            raw = handle.read()
        if data.draw(st.booleans(), label="truncate"):
            damaged = raw[:data.draw(st.integers(0, len(raw) - 1))]
        else:
            damaged = raw + data.draw(st.binary(min_size=1, max_size=16))
            if outfmt == "TXT":
                assume(damaged.decode("ascii", "replace").split("\n", 1)[1].strip())  # bare whitespace is harmless
        with open(victim, "wb") as handle:
            handle.write(damaged)
        with pytest.raises(ResultFolderError) as info:
            read_logits(folder, [f"input{i}" for i in range(len(logits))])
    assert os.path.basename(victim) in str(info.value)


@SETTINGS
@given(cut=st.floats(0, 1, exclude_max=True))
def test_truncated_summaries_are_refused(cut):
    with tempfile.TemporaryDirectory() as root:
        folder = publish(root, "TXT", np.zeros((2, 2), dtype=np.float32), dirname="run")
        summary = folder + "_summary.json"
        with open(summary, encoding="utf-8") as handle:
            text = handle.read().rstrip()
        with open(summary, "w", encoding="utf-8") as handle:
            handle.write(text[:int(cut * len(text))])
        manifest = {"num_samples": 2, "features_sha256": {}, "source": {}}
        with pytest.raises(ResultFolderError) as info:
            check_provenance(folder, manifest, root)
    assert str(info.value).startswith(f"{summary}: expected the inference summary written beside the result folder "
                                      "as JSON, got unparsable content")
