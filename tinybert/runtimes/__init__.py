"""Inference backends behind one small interface, each imported only when chosen.

Which classes exist, and what to install for each, is `registry.RUNTIMES`. A backend is created
from a model path (a checkpoint folder for the PyTorch ones) and exposes:
- `name`: str
- `batch_size`: the model's fixed batch size, or None when the batch axis is dynamic
- `seq_len`: the model's fixed sequence length, or None when dynamic
- `threads`: the threads it computes on, in all
- `requests`: how many calls the runner keeps in flight at once (1: one at a time; `run` is
  thread-safe when more)
- `run(input_ids, segment_ids, input_mask) -> np.ndarray` float32 logits `[bs, 2]`
and, where the runtime has its own asynchronous queue (OpenVINO's THROUGHPUT rows), also
`run_overlapped(inputs, on_output)` and `requests_in_flight`; where it compiles per input shape
(torch.compile), `warm_up(shapes) -> seconds` compiles them all ahead of the timed calls.
"""

from __future__ import annotations

import importlib

from tinybert.errors import BackendUnavailableError


def open_runtime(name: str, model_path: str, **options):
    """Runtime `name` (a registry.RUNTIMES entry) on `model_path`, its module imported only now."""
    from tinybert.registry import runtime

    entry = runtime(name)
    try:
        module = importlib.import_module(f"{__name__}.{entry.module}")
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith(__package__.split(".")[0]):
            raise  # a bug in this package, not a missing dependency
        raise BackendUnavailableError(f"runtime {name!r} is not available here ({exc}); install it: "
                                      f"{entry.install}") from None
    return getattr(module, entry.cls)(model_path, **options)
