"""PyTorch as a peer at its best on the CPU, as a user who already has torch would run it: bf16
autocast and/or `torch.compile` (Inductor, dynamic shapes, weights frozen), the last layer at [CLS]
only, one call at a time on all threads, inference mode.

Compilation is kept out of the pass time: `warm_up(shapes)` runs each (batch size, length) once, and
every call that compiled adds its time to `compile_seconds` (and one to `compiling_calls`).
"""

from __future__ import annotations

import contextlib
import time
import types

import numpy as np
import torch

from tinybert.errors import UsageError, expect
from tinybert.machine import physical_cores
from tinybert.model.modeling import cls_only_last_layer, load_tinybert

PRECISIONS = ("fp32", "bf16")


def graphs_compiled() -> int:
    """Graphs Dynamo has compiled in this process so far (any function, any backend)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


class TorchPeerRuntime:
    name = "pytorch-peer"
    batch_size = None
    seq_len = None
    requests = 1  # torch's thread pool is process-wide: one call at a time, on all threads

    def __init__(self, model_path: str, threads: int | None = None, precision: str = "fp32",
                 compile: bool = False, cls_only: bool = False):  # noqa: A002 - torch's own word
        expect(precision in PRECISIONS, UsageError,
               f"expected precision {' or '.join(PRECISIONS)}, got {precision!r}")
        self.threads = threads or physical_cores()
        torch.set_num_threads(self.threads)
        self.precision, self.compile, self.cls_only = precision, bool(compile), bool(cls_only)
        self.model = load_tinybert(model_path)
        self._context = contextlib.ExitStack()  # holds the [CLS]-only switch for this model's life
        if cls_only:
            self._context.enter_context(cls_only_last_layer(self.model))
        forward = _forward(self.model, precision == "bf16")
        if compile:
            _freeze_weights_when_compiling()
        self._forward = torch.compile(forward, dynamic=True) if compile else forward
        self.compile_seconds = 0.0
        self.compiling_calls = 0

    def run(self, input_ids: np.ndarray, segment_ids: np.ndarray, input_mask: np.ndarray) -> np.ndarray:
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in (input_ids, segment_ids, input_mask)]
        before = graphs_compiled() if self.compile else 0
        tick = time.perf_counter()
        with torch.inference_mode():
            logits = self._forward(*tensors)
        if self.compile and graphs_compiled() > before:
            self.compile_seconds += time.perf_counter() - tick
            self.compiling_calls += 1
        return logits.numpy()

    def warm_up(self, shapes) -> float:
        """Run each (batch size, length) of `shapes` once, so that every compilation a pass over
        them triggers happens here; returns the seconds those compilations took."""
        before = self.compile_seconds
        for batch, length in sorted(set(shapes)):
            ids = np.zeros((batch, length), dtype=np.int64)
            self.run(ids, ids, np.ones_like(ids))
        return self.compile_seconds - before


def _freeze_weights_when_compiling() -> None:
    """Inductor's freezing (`torch._inductor.config.freezing`: weights inlined as constants, folded,
    and on the CPU prepacked for its GEMM kernels; they can no longer change), set for the process
    as PyTorch's CPU inference examples set it (like `torch.set_num_threads`, and it only acts on
    graphs compiled with gradients off). Dynamo reads the setting itself when it traces, to make the
    weights graph constants (guarded per model); given as `torch.compile(options=...)` it reaches
    Inductor only, which then finds the weights as graph inputs and freezes nothing (measured: a
    weight changed after compiling still changed the output). Set once, not patched around each
    call: a config patch cost about 0.2 ms a call here."""
    import torch._inductor.config

    torch._inductor.config.freezing = True


def _forward(model, bf16: bool):
    """The function that is run (and compiled): logits float32 `[bs, 2]`, under bf16 with autocast
    inside it, so the compiled graph is the autocast one. Each backend gets its own code object:
    Dynamo keeps compiled graphs, and counts recompilations against its limit, per code object, and
    frozen weights make each model a graph of its own."""
    def forward(input_ids, segment_ids, input_mask):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids, segment_ids, input_mask)
        return logits.float()

    return types.FunctionType(forward.__code__.replace(), forward.__globals__, forward.__name__, None,
                              forward.__closure__)
