"""Inference backends behind one small interface (`interface.Runtime`), each imported only when chosen; what each
is (its class, package, needs, device, roofline chains) is its `registry.Runtime` record."""

from __future__ import annotations

import importlib

from tinybert.errors import BackendUnavailableError
from tinybert.runtimes.interface import Runtime


def open_runtime(name: str, model_path: str, **options) -> Runtime:
    """Runtime `name` (a registry.RUNTIMES record) on `model_path`, its module imported only now."""
    from tinybert.registry import runtime

    entry = runtime(name)
    try:
        module = importlib.import_module(entry.module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == entry.module.split(".")[0]:
            raise  # a bug in the runtime's own package, not a missing dependency
        raise BackendUnavailableError(f"runtime {name!r} is not available here ({exc}); install it: "
                                      f"{entry.install}") from None
    return getattr(module, entry.cls)(model_path, **options)
