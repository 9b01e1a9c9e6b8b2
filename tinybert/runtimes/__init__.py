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


def backend_names() -> list[str]:
    from tinybert.registry import RUNTIMES

    return sorted(r.name for r in RUNTIMES)


def create_backend(name: str, model_path: str, **options):
    from tinybert.registry import runtime

    entry = runtime(name)
    try:
        module = importlib.import_module(f"{__name__}.{entry.module}")
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith(__package__.split(".")[0]):
            raise  # a bug in this package, not a missing dependency
        raise BackendUnavailableError(f"backend {name!r} is not available here ({exc}); install it: "
                                      f"{entry.install}") from None
    return getattr(module, entry.cls)(model_path, **options)


def open_path(path: str, model_dir: str = ".", threads: int | None = None, requests: int | str | None = None,
              batch_size: int | None = None, ckpt_dir: str | None = None):
    """A CPU path's model (`registry.model_file`) opened on its runtime with its options, as the steps
    open it: the project's paths on a runtime that takes REQUESTS get `requests` (None: the setting's
    default) unless the path fixes it (C1); a peer runs at its own configuration (its options only)."""
    from tinybert.registry import cpu_path, model_file, runtime
    from tinybert.settings import default

    entry = cpu_path(path)
    options = {"threads": threads}
    if runtime(entry.runtime).requests and entry.role not in ("peer", "gpu"):
        options["requests"] = default("REQUESTS") if requests is None else requests
    options.update(entry.options)
    return create_backend(entry.runtime, model_file(path, model_dir, batch_size, ckpt_dir), **options)
