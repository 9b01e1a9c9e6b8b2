"""The model side of the server: a `tinybert.api.Classifier` opened once per replica with the steps' settings, its
tokenizing with TEI's length rule, the token budget its batches close at, and every CUDA-graph shape warmed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinybert.errors import ServeRequestError
from tinybert.settings import GPU_LENGTH_STEP


@dataclass(frozen=True)
class Encoded:
    """One request's rows: the model's three inputs at the full length and the longest real length."""

    arrays: tuple
    longest: int


class Engine:
    """A Classifier as the server runs it: `encode` on the request's thread pool, `run` on the batcher's."""

    def __init__(self, classifier):
        self.classifier = classifier
        self.seq_len = classifier.seq_len
        self.whole_batches = not classifier.call_tokens  # a GPU path: one graph replay per batch
        # CPU: one batch is one call of CALL_TOKENS positions; GPU: a classify batch at the full length.
        self.max_rows = classifier.batch_size
        self.budget_tokens = classifier.batch_size * self.seq_len if self.whole_batches else classifier.call_tokens
        self.concurrency = max(1, int(getattr(classifier.runtime, "requests", 1) or 1))

    @classmethod
    def open(cls, checkpoint: str, **settings) -> Engine:
        from tinybert.api import Classifier

        return cls(Classifier.open(checkpoint, **settings))

    def describe(self) -> dict:
        ready = self.classifier.ready
        return {"runtime": ready.runtime, "model": ready.model, "path": ready.plan.path, "backend": ready.backend,
                "choice": self.classifier.describe()}

    def encode(self, texts: list[str], truncate: bool) -> Encoded:
        """The texts as model inputs; a text longer than the model's positions is cut (`truncate`) or refused (413),
        tokenized once at one position more to tell."""
        features = self.classifier.encode(texts, seq_len=self.seq_len + 1)
        ids, mask = features.input_ids, features.input_mask
        too_long = np.flatnonzero(mask[:, -1])
        if too_long.size and not truncate:
            raise ServeRequestError("Validation", f"expected inputs of at most {self.seq_len} tokens ([CLS] and [SEP] "
                                                  f"included) or truncate true, got a longer one at position "
                                                  f"{int(too_long[0])}")
        cut = ids[:, :self.seq_len].copy()
        cut[too_long, self.seq_len - 1] = ids[too_long, self.seq_len]  # [SEP] after the kept tokens
        ids = cut
        mask = np.ascontiguousarray(mask[:, :self.seq_len])
        arrays = (ids, np.zeros_like(ids), mask)
        return Encoded(arrays, int(mask.sum(axis=1).max()) if len(mask) else 0)

    def run(self, input_ids, segment_ids, input_mask) -> np.ndarray:
        """float32 logits of one batch, rows in order (called on the batcher's model threads)."""
        arrays = (input_ids, segment_ids, input_mask)
        fixed = self.classifier.runtime.seq_len  # a static model takes its full length only
        if fixed is not None and input_ids.shape[1] < fixed:
            arrays = tuple(np.pad(a, ((0, 0), (0, fixed - a.shape[1]))) for a in arrays)
        return self.classifier.logits_of(arrays)

    def warm_up(self) -> int:
        """A GPU path: capture every (rows, length) shape a batch can take before the server says ready; the shapes
        asked for (0 where the runtime prepares nothing per shape)."""
        if not self.whole_batches:
            return 0
        lengths = range(GPU_LENGTH_STEP, self.seq_len + GPU_LENGTH_STEP, GPU_LENGTH_STEP)
        shapes = [(rows, min(length, self.seq_len)) for rows in range(1, self.max_rows + 1) for length in lengths]
        return len(shapes) if self.classifier.runtime.warm_up(shapes) else 0

    def close(self) -> None:
        self.classifier.close()
