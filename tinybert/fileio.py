"""Small filesystem helpers: atomic writes, natural sort, clear errors for OS failures."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from typing import Iterator

from .errors import PipelineError

_DIGIT_RUNS = re.compile(r"(\d+)")


def natural_key(name: str) -> list:
    """Sort key that orders digit runs as numbers and letters case-insensitively (input9 < input10)."""
    return [int(part) if part.isdigit() else part.lower() for part in _DIGIT_RUNS.split(name)]


def write_json_atomic(path: str, payload: object) -> None:
    """Write JSON to a temporary sibling and rename it into place: readers never see half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, tmp_path = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=2, ensure_ascii=False)
            out.write("\n")
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise


def read_json(path: str, error_type: type[PipelineError], what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            payload = json.load(handle)
    except FileNotFoundError:
        raise error_type(f"{path}: expected {what}, found no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error_type(f"{path}: expected {what} as JSON, got unparsable content ({exc})") from None
    if not isinstance(payload, dict):
        raise error_type(f"{path}: expected {what} as a JSON object, got {type(payload).__name__}")
    return payload


@contextlib.contextmanager
def staging_dir(final_path: str) -> Iterator[str]:
    """Yield a hidden temporary folder beside `final_path`; it is removed unless the caller moved it.

    Work is written there and only renamed to its final name once complete, so an interrupted
    run never leaves a folder that looks finished.
    """
    parent = os.path.dirname(os.path.abspath(final_path)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(final_path)}.partial-", dir=parent)
    try:
        yield tmp
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _file_in_the_way(path: str) -> str | None:
    """The nearest existing ancestor of `path` (itself included) when it is not a folder."""
    current = os.path.abspath(path)
    while not os.path.lexists(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    return None if os.path.isdir(current) else current


@contextlib.contextmanager
def os_errors_as(error_type: type[PipelineError], what: str) -> Iterator[None]:
    """Turn disk-full / permission errors into a one-line message instead of a traceback."""
    try:
        yield
    except PermissionError as exc:
        raise error_type(f"cannot {what}: permission denied on {exc.filename}") from None
    except (NotADirectoryError, FileExistsError) as exc:
        blocker = _file_in_the_way(os.path.dirname(os.path.abspath(exc.filename))) if exc.filename else None
        if isinstance(exc, FileExistsError) and exc.filename and not os.path.isdir(exc.filename):
            blocker = exc.filename  # makedirs on a path that is a file
        if blocker:
            raise error_type(f"cannot {what}: {blocker} is a file, expected a folder") from None
        raise error_type(f"cannot {what}: {exc.strerror} ({exc.filename})") from None
    except OSError as exc:
        if isinstance(exc, (FileNotFoundError, FileExistsError)) and exc.filename:
            raise error_type(f"cannot {what}: {exc.strerror} ({exc.filename})") from None
        raise error_type(f"cannot {what}: {exc.strerror or exc} ({exc.filename or ''})") from None
