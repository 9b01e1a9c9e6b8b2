"""One classify worker: a model session and the tokenizer, turning a chunk of the input into its shard the same
way on either engine (tokenized as preprocess does, the path ORT_MODEL or GPU_MODEL opens, length-bucketed calls)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinybert.classify.corpus import ChunkSpec, Layout, ParsedChunk
from tinybert.classify.tokenizing import PreparedChunk, TokenizeJob, prepare_chunk
from tinybert.errors import ModelFileError, expect
from tinybert.data.features import Features, load_wordpiece_tokenizer
from tinybert.runtimes.runner import plan, run_batches, softmax
from tinybert.settings import CALL_TOKENS, GPU_LENGTH_STEP
from tinybert.classify.shards import write_shard

NON_FINITE_LABEL = "-"  # the model gave NaN/inf logits: no label, probabilities nan (as predict shows it)


@dataclass(frozen=True)
class ClassifyJob:
    """Everything a worker needs, picklable (a Ray actor gets a copy)."""

    input_path: str
    layout: Layout
    work_dir: str
    path: str  # the ORT_MODEL or GPU_MODEL path run
    model_dir: str
    vocab_file: str
    seq_len: int
    batch_size: int
    bucket_edges: str
    with_sentence: bool = False
    call_tokens: int | None = CALL_TOKENS
    ckpt_dir: str | None = None  # the checkpoint a GPU path runs
    device: int | None = None  # DEVICE, for a GPU path (a Ray actor's GPU is its device 0)

    @property
    def tokenize_job(self) -> TokenizeJob:
        return TokenizeJob(self.input_path, self.layout, self.vocab_file, self.seq_len)


def _one_line(text: str) -> str:
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


_DECIMALS = 10000
_FOUR_DECIMALS = np.array([f"{k // _DECIMALS}.{k % _DECIMALS:04d}" for k in range(_DECIMALS + 1)], dtype=object)
_TIE_MARGIN = 1e-6  # scaled values this near a rounding tie are formatted by Python itself


def four_decimals(values: np.ndarray) -> np.ndarray:
    """f"{v:.4f}" of each probability in [0, 1], by table (an object array of str): a chunk's rows without a
    Python format call each; values within a hair of a tie (correct rounding decides) are formatted by Python."""
    scaled = np.asarray(values, dtype=np.float64) * _DECIMALS
    out = _FOUR_DECIMALS[np.rint(scaled).astype(np.int64)]
    for i in np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < _TIE_MARGIN).tolist():
        out[i] = f"{float(values[i]):.4f}"
    return out


def shard_text(parsed: ParsedChunk, logits: np.ndarray, with_sentence: bool) -> tuple[str, dict]:
    """The chunk's output rows (`index, label, p_negative, p_positive[, sentence]`) and its counts."""
    finite = np.isfinite(logits).all(axis=1)
    probabilities = softmax(np.where(finite[:, None], logits, 0.0)) if len(logits) else np.empty((0, 2))
    predicted = probabilities.argmax(axis=1)
    labels = np.array([str(k) for k in range(probabilities.shape[1])], dtype=object)[predicted]
    negative, positive = four_decimals(probabilities[:, 0]), four_decimals(probabilities[:, 1])
    labels[~finite], negative[~finite], positive[~finite] = NON_FINITE_LABEL, "nan", "nan"
    columns = [parsed.indices, labels.tolist(), negative.tolist(), positive.tolist()]
    if with_sentence:
        columns.append(map(_one_line, parsed.sentences))
    text = "\n".join(map("\t".join, zip(*columns))) + "\n" if len(logits) else ""
    counts = {"sentences": len(logits), "bad": parsed.bad, "bad_examples": parsed.bad_examples,
              "non_finite": int((~finite).sum())}
    if parsed.labels is not None:
        gold = np.asarray(parsed.labels, dtype=np.int64)
        counts.update(labelled=len(gold), correct=int(((predicted == gold) & finite).sum()))
    return text, counts


class ChunkClassifier:
    """A model session and the tokenizer, kept for every chunk a worker runs."""

    def __init__(self, job: ClassifyJob, threads: int | None = None, requests: int | str | None = None):
        from tinybert.runtimes.route import open_path

        self.job = job
        self.runtime = open_path(job.path, job.model_dir, threads, requests, batch_size=job.batch_size,
                                 ckpt_dir=job.ckpt_dir, device=job.device)
        model_len = self.runtime.seq_len
        expect(model_len in (None, job.seq_len), ModelFileError,
               f"{job.path}: expected inputs of length {job.seq_len}, the model has a fixed length of {model_len}")
        self.tokenizer = load_wordpiece_tokenizer(job.vocab_file)

    def prepare(self, spec: ChunkSpec) -> PreparedChunk:
        """Read, parse and tokenize one chunk (the local engine does this for the next chunks while
        the current one runs)."""
        return prepare_chunk(self.job.tokenize_job, spec, self.tokenizer)

    def warm_up(self, rows: int) -> tuple[int, float]:
        """A GPU path: capture every padded length of a `rows`-sentence batch now, not inside the run; returns
        how many shapes and the seconds it took (0, 0.0 where the runtime captures nothing)."""
        if self.job.call_tokens:
            return 0, 0.0
        shapes = [(rows, min(length, self.job.seq_len))
                  for length in range(GPU_LENGTH_STEP, self.job.seq_len + GPU_LENGTH_STEP, GPU_LENGTH_STEP)]
        seconds = self.runtime.warm_up(shapes) or 0.0  # None: the runtime prepares nothing per shape
        return (len(shapes) if seconds else 0), seconds

    def logits(self, features: Features, on_batch=None) -> np.ndarray:
        arrays = features.batch(slice(None))
        batches, fill_to = plan(arrays, self.job.batch_size, self.runtime.seq_len, self.runtime.batch_size,
                                self.job.bucket_edges, call_tokens=self.job.call_tokens)
        return run_batches(self.runtime.run, arrays, batches, fill_to, on_batch=on_batch,
                           requests=self.runtime.requests)[0]

    def finish(self, prepared: PreparedChunk, on_batch=None) -> dict:
        """Run the model on a prepared chunk and write its shard; returns the shard's record."""
        logits = np.empty((0, 2), dtype=np.float32)
        if prepared.features is not None:
            logits = self.logits(prepared.features, on_batch)
        text, counts = shard_text(prepared.parsed, logits, self.job.with_sentence)
        return write_shard(self.job.work_dir, prepared.spec, text, counts)

    def run_chunk(self, spec: ChunkSpec, on_batch=None) -> dict:
        return self.finish(self.prepare(spec), on_batch)
