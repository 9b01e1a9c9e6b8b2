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
