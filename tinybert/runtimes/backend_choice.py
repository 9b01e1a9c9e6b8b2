"""Which backend the shell steps use (`python -m tinybert backend`): auto takes the first of `registry.BACKENDS`
it may pick that is installed and has (or builds) its models, ONNX Runtime last; standard library only."""

from __future__ import annotations

import os
import sys

from tinybert import registry
from tinybert.errors import BackendUnavailableError, ModelFileError
from tinybert.registry import Backend, Request, alternatives, backend, backend_model


def _missing_models(entry: Backend, request: Request, batch_sizes) -> list[tuple[int, str]]:
    if entry.missing_model is None or (entry.builds_with_chip and request.chip_name):
        return []
    paths = [(bs, backend_model(entry.name, request, bs)) for bs in batch_sizes]
    return [(bs, path) for bs, path in paths if not os.path.isfile(path)]


def choose_backend(requested: str, batch_sizes, request: Request = Request()) -> str:
    """The backend to run `batch_sizes` with: `requested`, checked, or the auto rule's choice."""
    batch_sizes = list(batch_sizes)
    if requested == "auto":
        for entry in registry.BACKENDS:
            if entry.auto and entry.installed() and not _missing_models(entry, request, batch_sizes):
                return entry.name
        raise BackendUnavailableError(
            f"expected a usable backend among {alternatives([b.name for b in registry.BACKENDS if b.auto])}, found none")
    entry = backend(requested)
    if not entry.installed():
        raise BackendUnavailableError(entry.not_installed.format(python=sys.executable))
    missing = _missing_models(entry, request, batch_sizes)
    if missing:
        bs, path = missing[0]
        raise ModelFileError(entry.missing_model.format(path=path, bs=bs))
    return entry.name
