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
    prefix = f".{os.path.basename(final_path)}.partial-"
    clean_stale_staging(parent, (prefix,))
    staging = create_locked_staging(parent, prefix)
    tmp = staging.path
    try:
        yield tmp
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        staging.release()


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


# --- staging folders with a liveness lock ---------------------------------------------------------
#
# A staging folder `<parent>/<prefix>XXXXXXXX` has a lock file beside it, `<parent>/<prefix>XXXXXXXX.lock`
# (beside, not inside: a published folder gets no extra file). Its writer holds an advisory lock
# (flock) on that file for as long as the folder is being written; the kernel drops the lock when
# the writer dies, even by SIGKILL, and a process id reused since does not hold it. A cleaner that
# can take the lock therefore knows the writer is gone. The lock file is made (and locked) before
# the folder, so a folder whose lock file is missing was made by a version before these locks.

STAGING_LOCK_SUFFIX = ".lock"
# A lock file without its folder is taken for an orphan only this long after it was made: its
# writer locks it within microseconds of creating it, and makes the folder right after.
ORPHAN_LOCK_GRACE_S = 60.0
# A staging folder without a lock file (an earlier version's) is removed once nothing in it has
# changed for this long; its writer may otherwise still be running.
UNLOCKED_STAGING_AGE_S = 3600.0


class LockedStaging:
    """A staging folder and the lock its writer holds until `release`."""

    def __init__(self, path: str, lock_path: str, fd: int):
        self.path, self.lock_path, self._fd = path, lock_path, fd

    def release(self) -> None:
        """Remove the lock file and drop the lock (the folder itself is the caller's business)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.lock_path)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None


def create_locked_staging(parent: str, prefix: str) -> LockedStaging:
    """A new hidden folder `<parent>/<prefix>XXXXXXXX`, its writer's lock held until `release()`."""
    import fcntl

    os.makedirs(parent, exist_ok=True)
    for _ in range(100):
        fd, lock_path = tempfile.mkstemp(prefix=prefix, suffix=STAGING_LOCK_SUFFIX, dir=parent)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
        folder = lock_path[:-len(STAGING_LOCK_SUFFIX)]
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:  # an unlocked folder of an earlier version has this name
            os.unlink(lock_path)
            os.close(fd)
            continue
        except BaseException:
            os.unlink(lock_path)
            os.close(fd)
            raise
        return LockedStaging(folder, lock_path, fd)
    raise FileExistsError(f"no free staging folder name {prefix}XXXXXXXX in {parent}")


def _writer_gone(lock_path: str) -> int | None:
    """An fd holding the lock of `lock_path` when its writer is gone; None while it is held (or gone)."""
    import fcntl

    try:
        fd = os.open(lock_path, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # A writer that just finished removes its lock file before letting go of the lock.
        if os.fstat(fd).st_ino != os.stat(lock_path).st_ino:
            raise FileNotFoundError(lock_path)
    except OSError:
        os.close(fd)
        return None
    return fd


def _age_s(path: str, now: float) -> float:
    try:
        return now - os.stat(path).st_mtime
    except OSError:
        return 0.0


def remove_stale_staging(parent: str, prefixes: tuple[str, ...] | list[str]) -> int:
    """Remove the staging folders (and lock files) under `parent` whose writer is gone; return how
    many folders were removed. Folders of writers still running are never touched."""
    import time

    try:
        names = set(os.listdir(parent))
    except OSError:
        return 0
    now = time.time()
    removed = 0
    for name in sorted(n for n in names if n.startswith(tuple(prefixes))):
        path = os.path.join(parent, name)
        if name.endswith(STAGING_LOCK_SUFFIX):
            folder_name = name[:-len(STAGING_LOCK_SUFFIX)]
            if folder_name in names or _age_s(path, now) < ORPHAN_LOCK_GRACE_S:
                continue  # handled with its folder; or just made and not locked yet
            fd = _writer_gone(path)
            if fd is not None:  # an orphan: its writer died between publishing and removing it
                with contextlib.suppress(OSError):
                    os.unlink(path)
                os.close(fd)
            continue
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        lock_path = path + STAGING_LOCK_SUFFIX
        if name + STAGING_LOCK_SUFFIX in names:
            fd = _writer_gone(lock_path)
            if fd is None:
                continue  # its writer is still running (or has just finished)
            try:
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                    removed += not os.path.exists(path)
                with contextlib.suppress(OSError):
                    os.unlink(lock_path)
            finally:
                os.close(fd)
        elif _age_s(path, now) >= UNLOCKED_STAGING_AGE_S:
            shutil.rmtree(path, ignore_errors=True)
            removed += not os.path.exists(path)
    return removed


def clean_stale_staging(parent: str, prefixes: tuple[str, ...] | list[str]) -> int:
    """`remove_stale_staging`, saying so when it removed anything."""
    removed = remove_stale_staging(parent, prefixes)
    if removed:
        print(f"[INFO] removed {removed} stale staging folder(s) left by killed runs in {parent}")
    return removed
