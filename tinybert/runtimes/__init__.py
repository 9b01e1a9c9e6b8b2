"""Inference backends behind one small interface (`interface.Runtime`: name, batch_size, seq_len, threads, requests,
run, warm_up), each imported only when chosen; the classes and what to install for each are `registry.RUNTIMES`."""

from __future__ import annotations

import importlib

from tinybert.errors import BackendUnavailableError
from tinybert.runtimes.interface import Runtime


def open_runtime(name: str, model_path: str, **options) -> Runtime:
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
