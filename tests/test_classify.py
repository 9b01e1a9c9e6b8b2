"""`python -m tinybert classify`, in process, with a stand-in model (logits from the token ids) so the
chunking, bad lines, output, resuming and refusals are checked in milliseconds; the real model, the
shell script, SIGKILL and Ray are in test_classify_model.py."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from tinybert.runtimes.interface import RuntimeBase
from tinybert.runtimes import route as backends
from tinybert.classify import corpus
from tinybert.classify.pipeline import ClassifyOptions, classify_corpus
from tinybert.classify.corpus import Layout, parse_chunk, read_chunk, resolve_layout, scan_chunks
from tinybert.errors import DataFormatError, OutputError, UsageError
from tinybert.data.features import encode_sentences
from tinybert.runtimes.runner import softmax
from tinybert.settings import model_path
from tinybert.classify.shards import work_dir_for

RAY_LOADED_BEFORE = "ray" in sys.modules


class FakeBackend(RuntimeBase):
    """Logits from the sum of each row's real token ids: any change of tokens or rows shows."""

    seq_len = batch_size = None
    requests = 1

    def run(self, input_ids, segment_ids, input_mask):
        score = (input_ids * input_mask).sum(axis=1) % 11 - 5.5
        return np.stack([score, -score], axis=1).astype(np.float32)


@pytest.fixture
def fake_model(monkeypatch, tmp_path):
    """MODEL_DIR with a stand-in fast model file; open_path gives the FakeBackend."""
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    open(model_path("fast", str(model_dir)), "wb").write(b"stand-in model")
    opened = []
    monkeypatch.setattr(backends, "open_path", lambda *a, **k: opened.append((a, k)) or FakeBackend())
    return model_dir


def options(source, output, ckpt, model_dir, **more) -> ClassifyOptions:
    """Classify on the stand-in fast model (ORT_MODEL=fast: auto, the default, would export real ones)."""
    return ClassifyOptions(str(source), str(output), ckpt_dir=str(ckpt), model_dir=str(model_dir), progress=False,
                           chunk_sentences=more.pop("chunk_sentences", 4), ort_model=more.pop("ort_model", "fast"),
                           **more)


def expected_rows(vocab, rows):
    """`index, label, p_negative, p_positive` of (index, sentence) pairs, computed without classify."""
    features = encode_sentences([s for _, s in rows], str(vocab), 64)
    probabilities = softmax(FakeBackend().run(*features.batch(slice(None))))
    return [f"{i}\t{p.argmax()}\t{p[0]:.4f}\t{p[1]:.4f}" for (i, _), p in zip(rows, probabilities)]


def body(path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("index\tlabel\tp_negative\tp_positive")
    return lines[1:]


SENTENCES = ["the movie was great fun", "a boring , awful plot", "naive charm ... not bad", "Café NAÏVE 中文 story",
             "it was very good", "the acting was bad", "not great , not awful", "fun fun fun", "the end"]


def test_tsv_in_input_order_with_accuracy(small_inputs, fake_model, tmp_path, capsys):
    source = tmp_path / "in.tsv"
    source.write_text("sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES)), "utf-8")
    figures = classify_corpus(options(source, tmp_path / "out.tsv", small_inputs.checkpoint, fake_model))
    vocab = small_inputs.checkpoint / "vocab.txt"
    expected = expected_rows(vocab, list(enumerate(SENTENCES)))
    assert body(tmp_path / "out.tsv") == expected
    correct = sum(int(row.split("\t")[1]) == i % 2 for i, row in enumerate(expected))
    assert (figures["labelled"], figures["correct"]) == (len(SENTENCES), correct)
    out = capsys.readouterr().out
    assert f"accuracy: {100 * correct / len(SENTENCES):.2f}% ({correct}/{len(SENTENCES)}" in out and "sentences/s" in out
    assert not os.path.exists(work_dir_for(str(tmp_path / "out.tsv")))
    assert RAY_LOADED_BEFORE or "ray" not in sys.modules  # Ray is imported only for ENGINE=ray


def test_text_input_with_bom_crlf_and_sentences(small_inputs, fake_model, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(SENTENCES).encode("utf-8"))  # no final newline
    classify_corpus(options(source, tmp_path / "out.tsv", small_inputs.checkpoint, fake_model, with_sentence=True))
    lines = body(tmp_path / "out.tsv")
    expected = expected_rows(small_inputs.checkpoint / "vocab.txt", list(enumerate(SENTENCES)))
    assert [line.rsplit("\t", 1)[0] for line in lines] == expected
    assert [line.rsplit("\t", 1)[1] for line in lines] == SENTENCES
    assert "accuracy" not in capsys.readouterr().out


def test_other_tsv_by_column_name_or_index_and_glue_index(small_inputs, fake_model, tmp_path):
    source = tmp_path / "reviews.tsv"
    source.write_text("id\ttext\tlabel\n" + "".join(f"r{i}\t{s}\tpositive\n" for i, s in enumerate(SENTENCES)), "utf-8")
    expected = expected_rows(small_inputs.checkpoint / "vocab.txt", list(enumerate(SENTENCES)))
    for n, column in enumerate(("text", "1")):
        out = tmp_path / f"out{n}.tsv"
        classify_corpus(options(source, out, small_inputs.checkpoint, fake_model, column=column, label_column="none"))
        assert body(out) == expected
    with pytest.raises(UsageError, match="expected a 'words' column .*the header has id, text, label"):
        classify_corpus(options(source, tmp_path / "x.tsv", small_inputs.checkpoint, fake_model, column="words"))
    glue = tmp_path / "test.tsv"
    glue.write_text("index\tsentence\n" + "".join(f"{100 + i}\t{s}\n" for i, s in enumerate(SENTENCES)), "utf-8")
    classify_corpus(options(glue, tmp_path / "glue.tsv", small_inputs.checkpoint, fake_model))
    assert [row.split("\t")[0] for row in body(tmp_path / "glue.tsv")] == [str(100 + i) for i in range(len(SENTENCES))]


BAD_LINES = {3: b"", 5: "caf\xe9 bad".encode("latin-1") + b"\t1", 6: b"too\tmany\tfields", 8: b"fine words\t2",
             9: b"   \t0"}


def test_bad_lines_are_reported_and_skipped_keeping_indices(small_inputs, fake_model, tmp_path, capsys):
    lines = [f"{s}\t1".encode("utf-8") for s in SENTENCES]
    for line_no, raw in BAD_LINES.items():
        lines.insert(line_no - 2, raw)  # file line numbers: the header is line 1
    source = tmp_path / "in.tsv"
    source.write_bytes(b"sentence\tlabel\n" + b"\n".join(lines) + b"\n")
    figures = classify_corpus(options(source, tmp_path / "out.tsv", small_inputs.checkpoint, fake_model))
    good = [(line_no - 2, SENTENCES[i]) for i, line_no in enumerate(n for n in range(2, 2 + len(lines))
                                                                     if n not in BAD_LINES)]
    assert body(tmp_path / "out.tsv") == expected_rows(small_inputs.checkpoint / "vocab.txt", good)
    assert figures["bad"] == len(BAD_LINES) and figures["sentences"] == len(SENTENCES)
    err = capsys.readouterr().err
    offset = source.read_bytes().index(b"caf\xe9") + 3
    for fragment in ("5 bad line(s) skipped", "line 3: empty line", f"line 5: not UTF-8 (undecodable byte 0xe9 at byte "
                     f"offset {offset})", "line 6: expected 2 tab-separated fields, got 3",
                     "line 8: expected label 0 or 1, got '2'", "line 9: empty sentence"):
        assert fragment in err, (fragment, err)


def test_nothing_readable_is_a_clear_error(small_inputs, fake_model, tmp_path):
    cases = {"empty.txt": b"", "header.tsv": b"sentence\tlabel\n", "bad.tsv": b"sentence\tlabel\n\n\xff\t1\n",
             "nohead.tsv": b"words\n"}
    messages = {"empty.txt": "got an empty file", "header.tsv": "expected sentences after the header line",
                "bad.tsv": r"expected at least one usable line, got 2 bad line\(s\): line 2: empty line; line 3: not UTF-8",
                "nohead.tsv": "expected a 'sentence' column"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises((DataFormatError, UsageError), match=messages[name]):
            classify_corpus(options(tmp_path / name, tmp_path / "out.tsv", small_inputs.checkpoint, fake_model))
        assert not (tmp_path / "out.tsv").exists() and not os.path.exists(work_dir_for(str(tmp_path / "out.tsv")))
    with pytest.raises(DataFormatError, match="found no such file"):
        classify_corpus(options(tmp_path / "none.tsv", tmp_path / "out.tsv", small_inputs.checkpoint, fake_model))


def test_an_existing_output_is_kept_unless_overwrite(small_inputs, fake_model, tmp_path):
    source, out = tmp_path / "in.txt", tmp_path / "out.tsv"
    source.write_text("\n".join(SENTENCES) + "\n", "utf-8")
    out.write_text("earlier results\n")
    with pytest.raises(OutputError, match="already exists; refusing to overwrite it"):
        classify_corpus(options(source, out, small_inputs.checkpoint, fake_model))
    assert out.read_text() == "earlier results\n" and not os.path.exists(work_dir_for(str(out)))
    classify_corpus(options(source, out, small_inputs.checkpoint, fake_model, overwrite=True))
    assert len(body(out)) == len(SENTENCES)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 100])
@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b""])
@pytest.mark.parametrize("block", [5, 1 << 20])  # the scan's read size: lines and chunks straddling reads
def test_chunks_cover_every_line_once(tmp_path, monkeypatch, chunk, ending, block):
    monkeypatch.setattr(corpus, "SCAN_BLOCK", block)
    lines = [f"line {i}".encode() for i in range(10)] + [b"", b"last"]
    source = tmp_path / "in.txt"
    source.write_bytes(b"\n".join(lines[:-1]) + b"\n" + lines[-1] + ending)
    layout = resolve_layout(str(source))
    plan = scan_chunks(str(source), layout, chunk)
    assert layout == Layout("text") and plan.lines == len(lines) and plan.size == source.stat().st_size
    assert b"".join(read_chunk(str(source), spec) for spec in plan.chunks) == source.read_bytes()
    assert [spec.lines for spec in plan.chunks] == [min(chunk, len(lines) - i) for i in range(0, len(lines), chunk)]
    parsed = [parse_chunk(read_chunk(str(source), spec), spec, layout) for spec in plan.chunks]
    assert [i for p in parsed for i in p.indices] == [str(i) for i in range(len(lines)) if lines[i]]
    assert sum(p.bad for p in parsed) == 1
