"""A quick look at the model: label and probabilities for a few sentences, tokenized and run as the pipeline
does (`encode_sentences`, the inference step's backends), so it prints what the pipeline would score."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Iterable, TextIO

import numpy as np

from tinybert import LABEL_NAMES
from tinybert.errors import DataFormatError, ModelFileError, UsageError, expect
from tinybert.data.features import encode_sentences
from tinybert.data.tsv import undecodable_byte
from tinybert.model.modeling import vocab_path
from tinybert.runtimes.runner import model_logits, softmax
from tinybert.settings import SEQ_LEN, default

NO_LABEL, NON_FINITE = -1, "non-finite"  # the model gave NaN/inf logits: no label is shown for them
DYNAMIC_BATCH = 64  # rows per call when the model accepts any batch size


@dataclass
class Prediction:
    sentence: str
    label: int
    probabilities: list[float]

    def tsv_row(self) -> str:
        probs = "\t".join(f"{p:.4f}" for p in self.probabilities)
        text = self.sentence.replace("\t", " ").replace("\r", " ").replace("\n", " ")  # keep one row per sentence
        if self.label == NO_LABEL:
            return f"-\t{NON_FINITE}\t{probs}\t{text}"
        return f"{self.label}\t{LABEL_NAMES[self.label]}\t{probs}\t{text}"


TSV_HEADER = "label\tname\tp_negative\tp_positive\tsentence"


def _stdin_lines(stdin: TextIO):
    """(line number, text) of stdin, each line decoded on its own so a bad byte is found on its line."""
    if hasattr(stdin, "buffer"):
        for number, raw in enumerate(stdin.buffer, start=1):
            yield number, raw.decode("utf-8", "surrogateescape")
    else:
        yield from enumerate(stdin, start=1)


def read_sentences(args: list[str], stdin: TextIO) -> list[str]:
    """Sentences from the command line, else one per non-blank line of stdin; a line (or argument)
    that is not UTF-8 is refused, named by its number."""
    if args:
        sentences = list(args)
        for number, sentence in enumerate(sentences, start=1):
            bad = undecodable_byte(sentence)  # the tokenizer would refuse its lone surrogates with a TypeError
            expect(bad is None, DataFormatError,
                   f"sentence argument {number}: expected UTF-8 text, got {bad} of the argument")
    else:
        sentences = []
        for number, line in _stdin_lines(stdin):
            bad = undecodable_byte(line)
            expect(bad is None, DataFormatError, f"stdin line {number}: expected UTF-8 text, got {bad} of the line")
            if line.strip():
                sentences.append(line.rstrip("\r\n"))
    expect(bool(sentences), UsageError, "expected sentences as arguments or one per line on stdin, got none")
    return sentences


def _open_runtime(model_dir: str | None, onnx: str | None, threads: int | None, runtime: str = "onnxruntime",
                  requests: int | str | None = None, plan=None):
    expect((model_dir is None) != (onnx is None), UsageError,
           "expected exactly one of --model_dir (PyTorch checkpoint) or --onnx (ONNX model), "
           f"got {'both' if model_dir and onnx else 'neither'}")
    if plan is None:  # a model named as it is: prepared as any explicit model
        from tinybert.prepare import ModelRequest, prepare

        plan = prepare(ModelRequest(backend=None, model=onnx or model_dir, runtime=runtime if onnx else "pytorch",
                                    threads=threads, requests=requests if onnx else None)).plan
    return plan.open()


def _sequence_length(runner, requested: int | None, model_path: str) -> int:
    """A model with a fixed sequence axis decides the length; otherwise the request or the default."""
    if runner.seq_len is None:
        return requested or SEQ_LEN
    expect(requested in (None, runner.seq_len), ModelFileError,
           f"{model_path}: expected inputs of length {requested}, the model has a fixed length of {runner.seq_len}")
    return runner.seq_len


def predict(sentences: list[str], model_dir: str | None = None, onnx: str | None = None,
            vocab_file: str | None = None, max_seq_length: int | None = None,
            threads: int | None = None, runtime: str = "onnxruntime",
            requests: int | str | None = None, plan=None) -> list[Prediction]:
    runner = _open_runtime(model_dir, onnx, threads, runtime, requests, plan)
    model_path = onnx or model_dir
    vocab_file = vocab_file or vocab_path(model_dir or default("CKPT_DIR"))
    seq_len = _sequence_length(runner, max_seq_length, model_path)
    features = encode_sentences(sentences, vocab_file, seq_len)
    config = getattr(getattr(runner, "model", None), "config", None)
    if config is not None:  # the PyTorch model knows its sizes; catch a mismatched vocab.txt or length
        expect(seq_len <= config.max_position_embeddings, UsageError,
               f"expected --max_seq_length <= {config.max_position_embeddings} (max positions), got {seq_len}")
        expect(int(features.input_ids.max()) < config.vocab_size, UsageError,
               f"{vocab_file}: expected the vocabulary of {model_path} ({config.vocab_size} tokens), "
               f"got token ids up to {int(features.input_ids.max())}")
    # Consecutive batches at the full length; a fixed-batch model gets its last batch filled.
    batch_size = runner.batch_size or min(len(sentences), DYNAMIC_BATCH)
    logits = model_logits(runner, features.batch(slice(None)), batch_size)
    finite = np.isfinite(logits).all(axis=1)
    probabilities = np.where(finite[:, None], softmax(np.where(finite[:, None], logits, 0.0)), np.nan)
    return [Prediction(s, int(p.argmax()) if ok else NO_LABEL, p.tolist())
            for s, p, ok in zip(sentences, probabilities, finite)]


def print_predictions(predictions: Iterable[Prediction], out: TextIO | None = None) -> None:
    out = out or sys.stdout  # looked up now: a redirected stdout is the one written to
    predictions = list(predictions)
    print(TSV_HEADER, file=out)
    for prediction in predictions:
        print(prediction.tsv_row(), file=out)
    unlabelled = [p.sentence for p in predictions if p.label == NO_LABEL]
    if unlabelled:
        shown = "; ".join(repr(s) for s in unlabelled[:5]) + (" ..." if len(unlabelled) > 5 else "")
        print(f"[WARN] {len(unlabelled)} of {len(predictions)} sentence(s) got non-finite logits (NaN/inf) from the "
              f"model, shown as '{NON_FINITE}' with no label: {shown}", file=sys.stderr)
