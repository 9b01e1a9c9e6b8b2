"""The Python API (README's example): a ready model opened from a checkpoint folder with the scripts' settings as
keyword arguments, classifying lists of strings into labels and probabilities, closed as a context."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinybert import LABEL_NAMES
from tinybert.errors import UsageError, expect
from tinybert.settings import CALL_TOKENS, CLASSIFY_BATCH, default

NO_LABEL = "-"  # the model gave NaN/inf logits: no label, probabilities nan


@dataclass(frozen=True)
class Classification:
    """One text's outcome: its label (LABEL_NAMES, or NO_LABEL for non-finite logits), class index, probabilities
    and raw logits in class order."""

    text: str
    label: str
    index: int
    probabilities: tuple[float, ...]
    logits: tuple[float, ...]

    @property
    def score(self) -> float:
        """The probability of the label chosen."""
        return self.probabilities[self.index] if self.index >= 0 else float("nan")


class Classifier:
    """A prepared model (`tinybert.prepare`: exported when missing or stale, auto's gates checked) and the checkpoint's
    tokenizer; `classify` tokenizes, batches by length as the pipeline does and returns one Classification per text."""

    def __init__(self, ready, *, vocab_file: str, seq_len: int, batch_size: int, bucket_edges: str,
                 call_tokens: int):
        from tinybert.data.features import load_wordpiece_tokenizer
        from tinybert.registry import run_path

        self.ready = ready
        self.seq_len, self.batch_size, self.bucket_edges = seq_len, batch_size, bucket_edges
        whole = ready.plan.path is not None and run_path(ready.plan.path).whole_batches
        self.call_tokens = 0 if whole else call_tokens  # a GPU call is one graph replay per batch
        self._vocab_file = vocab_file
        self._tokenizer = load_wordpiece_tokenizer(vocab_file)
        self._runtime = ready.open()
        expect(self._runtime.seq_len in (None, seq_len), UsageError,
               f"{ready.model}: expected inputs of length {seq_len}, the model has a fixed length of "
               f"{self._runtime.seq_len}")

    @classmethod
    def open(cls, checkpoint: str, *, backend: str = default("BACKEND"), ort_model: str = default("ORT_MODEL"),
             gpu_model: str = default("GPU_MODEL"), model_dir: str = default("MODEL_DIR"),
             features_dir: str | None = None, calibration_file: str | None = None, device: int | None = None,
             threads: int | None = None, requests: int | str | None = None, seq_len: int = int(default("SEQ_LEN")),
             batch_size: int = CLASSIFY_BATCH, bucket_edges: str = default("BUCKET_EDGES"),
             call_tokens: int = CALL_TOKENS, quiet: bool = True) -> Classifier:
        """The model the settings name, ready and open: `checkpoint` is CKPT_DIR (weights and vocab.txt); the other
        keywords are the settings of the same names (BACKEND auto: a CUDA GPU torch can use, else the CPU)."""
        from tinybert.model.modeling import vocab_path

        ready = cls.prepare(checkpoint, backend=backend, ort_model=ort_model, gpu_model=gpu_model, model_dir=model_dir,
                            features_dir=features_dir, calibration_file=calibration_file, device=device,
                            threads=threads, requests=requests, seq_len=seq_len, batch_size=batch_size, quiet=quiet)
        return cls(ready, vocab_file=vocab_path(checkpoint), seq_len=seq_len, batch_size=batch_size,
                   bucket_edges=bucket_edges, call_tokens=call_tokens)

    @staticmethod
    def prepare(checkpoint: str, *, backend: str = default("BACKEND"), ort_model: str = default("ORT_MODEL"),
                gpu_model: str = default("GPU_MODEL"), model_dir: str = default("MODEL_DIR"),
                features_dir: str | None = None, calibration_file: str | None = None, device: int | None = None,
                threads: int | None = None, requests: int | str | None = None, seq_len: int = int(default("SEQ_LEN")),
                batch_size: int = CLASSIFY_BATCH, quiet: bool = True, **unused):
        """What `open` opens, exported and gated but not opened (`tinybert.prepare.Ready`): a server prepares once
        before its replicas open it; `unused` takes open's batching keywords."""
        import os

        from tinybert.prepare import Calibration, ModelRequest, prepare
        from tinybert.registry import path_backends

        expect(os.path.isdir(checkpoint), UsageError,
               f"{checkpoint}: expected the TinyBERT checkpoint folder (config, weights, vocab.txt), found no such "
               "folder")
        request = ModelRequest(backend=backend, ort_model=ort_model, gpu_model=gpu_model, model_dir=model_dir,
                               ckpt_dir=checkpoint, batch_size=batch_size, features_dir=features_dir,
                               calibration=Calibration(calibration_file) if calibration_file else None,
                               device=device, threads=threads, requests=requests, seq_len=seq_len)
        return prepare(request, among=path_backends(), quiet=quiet)

    @property
    def runtime(self):
        expect(self._runtime is not None, UsageError, "expected an open Classifier, got one already closed")
        return self._runtime

    def describe(self) -> str:
        """What runs: runtime, model and the path the settings chose."""
        return self.ready.plan.describe()

    def encode(self, texts: list[str], seq_len: int | None = None):
        """The texts as the model's three inputs (tokenized as the preprocess step does); `seq_len`: at another
        length than the model's (the server's over-length check)."""
        from tinybert.data.features import encode_sentences

        expect(not isinstance(texts, str), UsageError, "expected a list of strings, got one string (wrap it in a list)")
        texts = list(texts)
        for position, text in enumerate(texts):
            expect(isinstance(text, str), UsageError,
                   f"expected a list of strings, got {type(text).__name__} at position {position}")
        return encode_sentences(texts, self._vocab_file, seq_len or self.seq_len, tokenizer=self._tokenizer)

    def logits(self, texts: list[str]) -> np.ndarray:
        """float32 logits [len(texts), 2], in the texts' order."""
        features = self.encode(texts)
        if not len(features):
            return np.empty((0, len(LABEL_NAMES)), dtype=np.float32)
        return self.logits_of(features.batch(slice(None)))

    def logits_of(self, arrays) -> np.ndarray:
        """float32 logits of already-encoded inputs (input_ids, segment_ids, input_mask), length-bucketed."""
        from tinybert.runtimes.runner import plan, run_batches

        runtime = self.runtime
        batches, fill_to = plan(arrays, self.batch_size, runtime.seq_len, runtime.batch_size, self.bucket_edges,
                                call_tokens=self.call_tokens)
        return run_batches(runtime.run, arrays, batches, fill_to, requests=runtime.requests)[0]

    def classify(self, texts: list[str]) -> list[Classification]:
        """One Classification per text, best class as its label."""
        from tinybert.runtimes.runner import softmax

        logits = self.logits(texts)
        finite = np.isfinite(logits).all(axis=1)
        probabilities = np.where(finite[:, None], softmax(np.where(finite[:, None], logits, 0.0)), np.nan)
        results = []
        for text, row, p, ok in zip(texts, logits, probabilities, finite):
            index = int(p.argmax()) if ok else -1
            results.append(Classification(text, LABEL_NAMES[index] if ok else NO_LABEL, index,
                                          tuple(map(float, p)), tuple(map(float, row))))
        return results

    __call__ = classify

    def close(self) -> None:
        """Let the runtime go (its sessions, the GPU's graphs); the Classifier cannot run after."""
        self._runtime = None

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
