"""Inference backends behind one small interface (name, batch_size, seq_len, threads, requests, run), each
imported only when chosen; the classes and what to install for each are `registry.RUNTIMES`."""

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
    """A CPU path's model opened on its runtime as the steps open it: project paths get `requests` (None: REQUESTS)
    unless the path fixes it (C1); a peer runs at its own configuration."""
    from tinybert.registry import cpu_path, model_file, runtime
    from tinybert.settings import default

    entry = cpu_path(path)
    options = {"threads": threads}
    if runtime(entry.runtime).requests and entry.role not in ("peer", "gpu"):
        options["requests"] = default("REQUESTS") if requests is None else requests
    options.update(entry.options)
    return create_backend(entry.runtime, model_file(path, model_dir, batch_size, ckpt_dir), **options)
