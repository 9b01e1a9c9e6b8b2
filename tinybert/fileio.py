"""Writing files and folders safely, in one place: readers never see half a file or a folder that looks
finished but is not (written beside, renamed into place), and earlier results are never overwritten."""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import re
import secrets
import shutil
import tempfile
from typing import Callable, Iterator

from tinybert.errors import OutputError, PipelineError

_DIGIT_RUNS = re.compile(r"(\d+)")


def natural_key(name: str) -> list:
    """Sort key that orders digit runs as numbers and letters case-insensitively (input9 < input10)."""
    return [int(part) if part.isdigit() else part.lower() for part in _DIGIT_RUNS.split(name)]


def _new_file(directory: str, prefix: str, suffix: str, mode: int) -> str:
    """An empty file under a name no other writer holds (O_EXCL), its permissions `mode` less the umask."""
    for _ in range(100):
        candidate = os.path.join(directory, f"{prefix}{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name {prefix}XXXXXXXX{suffix} in {directory}")


@contextlib.contextmanager
def atomic_path(path: str, tmp_dir: str | None = None, mode: int = 0o600) -> Iterator[str]:
    """Yield a temporary path beside `path` (or in `tmp_dir`, same file system; permissions `mode` less the
    umask), renamed into place once written; on any failure it is removed and `path` left as it was."""
    directory = tmp_dir or os.path.dirname(os.path.abspath(path))
    tmp_path = _new_file(directory, f".{os.path.basename(path)}.", ".partial", mode)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)


def write_text_atomic(path: str, text: str, keep_existing: bool = False, what: str = "it") -> bool:
    """Write `text` to `path` atomically; returns whether it was written. With `keep_existing`, an existing
    file is kept: the same content is a re-run (False), other content an OutputError."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(text)
        if keep_existing and os.path.exists(path):
            if os.path.isfile(path) and filecmp.cmp(tmp, path, shallow=False):
                return False
            raise OutputError(f"{path}: already exists with other content; refusing to overwrite {what}")
    return True


def write_bytes_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """`data` written to `path` atomically, for files whose bytes are hashed (a reader never sees part)."""
    with atomic_path(path, mode=mode) as tmp:
        with open(tmp, "wb") as out:
            out.write(data)


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
    """Create and return a new folder `root/base` (else `base-1`, `-2`, ...; with `exact`, an error): the first
    run to create a name owns it; `taken(name)` marks names to skip although no folder exists."""
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


# --- staging folders with a liveness lock: the writer holds a flock on `<folder>.lock` beside it, which
# the kernel drops when the writer dies (even by SIGKILL), so a cleaner that can take it knows it is gone.

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


def _take_lock(fd: int) -> bool:
    """Whether this process now holds the exclusive lock (flock) of `fd`; False while another one does."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def hold_lock(path: str) -> int | None:
    """An fd holding the exclusive lock of `path` (made when missing) until it is closed; None while
    another process holds it: one writer at a time, and the kernel frees it when its holder dies."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if _take_lock(fd):
        return fd
    os.close(fd)
    return None


def _writer_gone(lock_path: str) -> int | None:
    """An fd holding the lock of `lock_path` when its writer is gone; None while it is held (or gone)."""
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except OSError:
        return None
    try:
        # A writer that just finished removes its lock file before letting go of the lock.
        gone = _take_lock(fd) and os.fstat(fd).st_ino == os.stat(lock_path).st_ino
    except OSError:
        gone = False
    if not gone:
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
