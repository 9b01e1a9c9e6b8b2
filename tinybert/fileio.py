"""Writing files and folders safely, in one place: readers never see half a file or a folder that
looks finished but is not, and earlier results are never overwritten.

- `atomic_path` / `write_text_atomic` / `write_json_atomic`: one file, written beside its final
  name and renamed into place.
- `staging_dir` + `publish_dir`: one folder, built hidden and renamed into place as a whole.
- `reserve_dir`: a new folder under a name no other run holds (mkdir is atomic).
- `os_errors_as`: disk full, permission and file-in-the-way errors as one clear message.
"""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import re
import shutil
import tempfile
from typing import Callable, Iterator

from .errors import OutputError, PipelineError

_DIGIT_RUNS = re.compile(r"(\d+)")


def natural_key(name: str) -> list:
    """Sort key that orders digit runs as numbers and letters case-insensitively (input9 < input10)."""
    return [int(part) if part.isdigit() else part.lower() for part in _DIGIT_RUNS.split(name)]


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside `path`; once the caller has written it, rename it into place.

    On any failure the temporary file is removed and `path` is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    handle, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".partial", dir=directory)
    os.close(handle)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)


def write_text_atomic(path: str, text: str, keep_existing: bool = False, what: str = "it") -> bool:
    """Write `text` to `path` atomically; returns whether the file was written.

    With `keep_existing`, an existing file is never replaced: the same content means a re-run
    (returns False), other content is refused with an OutputError ("refusing to overwrite {what}").
    """
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(text)
        if keep_existing and os.path.exists(path):
            if os.path.isfile(path) and filecmp.cmp(tmp, path, shallow=False):
                return False
            raise OutputError(f"{path}: already exists with other content; refusing to overwrite {what}")
    return True


def write_json_atomic(path: str, payload: object) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


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
    """Yield a hidden temporary folder beside `final_path`; it is removed unless the caller moved it
    (with `publish_dir`). An interrupted run never leaves a folder that looks finished."""
    parent = os.path.dirname(os.path.abspath(final_path)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(final_path)}.partial-", dir=parent)
    try:
        yield tmp
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def publish_dir(tmp: str, final_path: str) -> None:
    """Move a finished staging folder to `final_path`, replacing what is there as a whole: the old
    folder is renamed aside first, so `final_path` always holds one complete version."""
    if not os.path.exists(final_path):
        os.rename(tmp, final_path)
        return
    old = f"{tmp}.old"
    os.rename(final_path, old)
    os.rename(tmp, final_path)
    shutil.rmtree(old, ignore_errors=True)


def reserve_dir(root: str, base: str, exact: bool = False, taken: Callable[[str], bool] | None = None,
                attempts: int = 1000) -> str:
    """Create and return a new folder `root/base` (or `root/base-1`, `-2`, ... unless `exact`).

    The first run to create a name owns it. `taken(name)` marks names to skip although no folder
    exists (e.g. an earlier run's summary is still there). With `exact`, a taken name is an error.
    """
    os.makedirs(root, exist_ok=True)
    for attempt in range(attempts if not exact else 1):
        name = base if attempt == 0 else f"{base}-{attempt}"
        path = os.path.join(root, name)
        if taken is not None and taken(name):
            if exact:
                raise OutputError(f"{path}: an earlier run's results use this name; refusing to overwrite them")
            continue
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            if exact:
                raise OutputError(f"{path}: already exists; refusing to overwrite earlier results") from None
    raise OutputError(f"{root}: no free folder name starting with {base}")


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
        raise error_type(f"cannot {what}: {exc.strerror or exc} ({exc.filename or ''})") from None
