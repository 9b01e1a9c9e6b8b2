"""Staging folders and their liveness locks (tinybert/fileio.py): a folder whose writer is gone is
removed, one whose writer still holds its lock never is, whatever process ids were reused since."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time

import pytest
from conftest import REPO

from tinybert.fileio import (ORPHAN_LOCK_GRACE_S, UNLOCKED_STAGING_AGE_S, create_locked_staging, remove_stale_staging,
                             staging_dir)

PREFIX = ".result.partial-"


def _age(path, seconds):
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_a_writer_leaves_nothing_once_released(tmp_path):
    staging = create_locked_staging(str(tmp_path), PREFIX)
    assert sorted(os.listdir(tmp_path)) == sorted([os.path.basename(staging.path), os.path.basename(staging.lock_path)])
    assert staging.lock_path == staging.path + ".lock"
    assert remove_stale_staging(str(tmp_path), (PREFIX,)) == 0  # held by this writer
    os.rmdir(staging.path)
    staging.release()
    staging.release()  # twice is harmless
    assert os.listdir(tmp_path) == []


def test_a_dead_writers_folder_goes_a_live_writers_stays(tmp_path):
    live = create_locked_staging(str(tmp_path), PREFIX)
    # a writer in another process that dies without cleaning up (its lock goes with it)
    code = ("import sys; from tinybert.fileio import create_locked_staging; "
            f"s = create_locked_staging({str(tmp_path)!r}, {PREFIX!r}); open(s.path + '/out.txt', 'w').write('1'); "
            "print(s.path); import os; os._exit(0)")
    dead = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.strip()
    assert os.path.isfile(os.path.join(dead, "out.txt")) and os.path.isfile(dead + ".lock")
    assert remove_stale_staging(str(tmp_path), (PREFIX,)) == 1
    assert not os.path.exists(dead) and not os.path.exists(dead + ".lock")
    assert os.path.isdir(live.path) and os.path.isfile(live.lock_path)
    live.release()


def test_a_lock_held_by_another_open_file_keeps_the_folder(tmp_path):
    """What the shell gear path does: `flock` on its own descriptor of the lock file."""
    folder = tmp_path / ".gears-abc"
    folder.mkdir()
    lock = tmp_path / ".gears-abc.lock"
    lock.touch()
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    assert remove_stale_staging(str(tmp_path), (".gears-",)) == 0 and folder.is_dir()
    os.close(fd)  # the writer ends
    assert remove_stale_staging(str(tmp_path), (".gears-",)) == 1 and os.listdir(tmp_path) == []


def test_orphan_lock_files_go_after_a_grace_period(tmp_path):
    young, old, held = (tmp_path / f"{PREFIX}{name}.lock" for name in ("young", "old", "held"))
    for path in (young, old, held):
        path.touch()
    _age(old, ORPHAN_LOCK_GRACE_S + 5)
    _age(held, ORPHAN_LOCK_GRACE_S + 5)
    fd = os.open(held, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a writer that has just published its folder
    assert remove_stale_staging(str(tmp_path), (PREFIX,)) == 0  # lock files are not folders
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([young.name, held.name])
    os.close(fd)


def test_unlocked_folders_of_earlier_versions_go_only_when_idle(tmp_path):
    recent, idle = tmp_path / f"{PREFIX}recent", tmp_path / f"{PREFIX}idle"
    recent.mkdir()
    idle.mkdir()
    _age(idle, UNLOCKED_STAGING_AGE_S + 5)
    unrelated = tmp_path / "2024_01_01-00_00_00"  # published results and other names are never touched
    unrelated.mkdir()
    _age(unrelated, UNLOCKED_STAGING_AGE_S + 5)
    assert remove_stale_staging(str(tmp_path), (PREFIX,)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([recent.name, unrelated.name])


def test_staging_dir_removes_stale_siblings_of_the_same_target(tmp_path, capsys):
    stale = tmp_path / ".bert_bin.partial-dead1234"
    stale.mkdir()
    (tmp_path / ".bert_bin.partial-dead1234.lock").touch()
    other = tmp_path / ".other.partial-dead1234"  # another target's staging folder: not this writer's business
    other.mkdir()
    (tmp_path / ".other.partial-dead1234.lock").touch()
    with staging_dir(str(tmp_path / "bert_bin")) as tmp:
        assert os.path.isdir(tmp) and os.path.isfile(tmp + ".lock")
    assert f"removed 1 stale staging folder(s) left by killed runs in {tmp_path}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.partial-dead1234", ".other.partial-dead1234.lock"]


@pytest.mark.parametrize("missing", [True, False])
def test_a_missing_or_empty_root_is_not_an_error(tmp_path, missing):
    root = tmp_path / "absent" if missing else tmp_path
    assert remove_stale_staging(str(root), (PREFIX,)) == 0
