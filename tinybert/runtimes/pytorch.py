"""PyTorch eager on the `.pth` checkpoint: the model card's "pth" reference path."""

from __future__ import annotations

import numpy as np
import torch

from tinybert.capabilities import require
from tinybert.machine import physical_cores
from tinybert.model.modeling import load_tinybert
from tinybert.runtimes.interface import RuntimeBase
from tinybert.runtimes.torch_peer import torch_threads


class PyTorchRuntime(RuntimeBase):
    name = "pytorch"
    batch_size = None
    seq_len = None
    threads: int

    requests = 1  # torch's thread pool is process-wide: one call at a time, on all threads

    def __init__(self, model_path: str, threads: int | None = None):
        require("torch", f"backend {self.name!r}")
        self.threads = threads or physical_cores()
        self.model = load_tinybert(model_path)

    def run(self, input_ids: np.ndarray, segment_ids: np.ndarray, input_mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch_threads(self.threads):
            inputs = (torch.from_numpy(np.ascontiguousarray(a)) for a in (input_ids, segment_ids, input_mask))
            return self.model(*inputs).numpy()


def matmul_chain(weights, *, precision: str, threads: int, requests: int):
    """The roofline's chain as eager linear layers on `threads` threads (fp32, or under bf16 autocast)."""
    import contextlib

    mats = [torch.from_numpy(w.T.copy()) for w in weights]  # linear takes (N, K)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext

    def run(x):
        with torch.inference_mode(), autocast(), torch_threads(threads):
            h = torch.from_numpy(x)
            for i, w in enumerate(mats):
                h = torch.nn.functional.linear(h, w)
                h = torch.relu(h) if i < len(mats) - 1 else h
            return h
    return run
