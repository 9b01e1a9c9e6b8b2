"""Shared pieces for the hardening, fault and predict tests: features and a static ONNX model of
the small generated checkpoint (made once per session), and a child-process harness that stops an
inference run at a chosen point so a test can signal it there."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

from conftest import REPO

from tinybert import INPUT_NAMES


@lru_cache(maxsize=None)
def small_features(tsv: Path, vocab: Path, out: Path) -> Path:
    from tinybert.features import preprocess

    preprocess(str(tsv), str(vocab), str(out), 64, progress=False)
    return out


@lru_cache(maxsize=None)
def small_onnx(checkpoint: Path, bin_dir: Path, out_dir: Path, batch_size: int) -> Path:
    """TinyBERT_sim_bs{bs}.onnx of the small checkpoint: static [bs, 64], as test/pth2onnx.sh writes it."""
    from tinybert.export import export

    return Path(export(str(checkpoint), batch_size, str(out_dir), features_dir=str(bin_dir)).simplified_path)


def input_arg(bin_dir: Path) -> str:
    return ",".join(str(bin_dir / name) for name in INPUT_NAMES)


# Runs `python -m tinybert $STEP ARGS` (STEP: infer, the default, or preprocess) with one step of
# the writers patched (HOLD_AT):
#   write:N  - before the N-th output file;   summary - right after the summary is written;
#   publish  - before the final name is reserved;
#   manifest - preprocess: after every feature file, before the feature folder is renamed into place.
# There it touches $MARK, then either sleeps (ACTION=sleep: the test signals it), raises
# (ACTION=crash), or waits for $GO to exist (ACTION=wait_go: several runs publish at once).
# FIXED_START pins the run's start time, so concurrent runs want the same timestamped name.
HARNESS = r'''
import os, pathlib, sys, time
from tinybert import features, resultdir
from tinybert.cli import run

hold, action = os.environ["HOLD_AT"], os.environ["ACTION"]
count = 0

def stop():
    pathlib.Path(os.environ["MARK"]).touch()
    if action == "crash":
        raise RuntimeError("simulated crash while writing outputs")
    if action == "wait_go":
        while not os.path.exists(os.environ["GO"]):
            time.sleep(0.01)
    else:
        time.sleep(120)

writer = resultdir.ResultFolderWriter
if hold.startswith("write:"):
    original_write = writer.write
    def write(self, *args):
        global count
        count += 1
        if count == int(hold.split(":")[1]):
            stop()
        return original_write(self, *args)
    writer.write = write
elif hold == "summary":
    original_json = resultdir.write_json_atomic
    def write_json(*args):
        original_json(*args)
        stop()
    resultdir.write_json_atomic = write_json
elif hold == "manifest":
    original_manifest = features.write_json_atomic
    def write_manifest(*args):
        stop()
        original_manifest(*args)
    features.write_json_atomic = write_manifest
elif hold == "publish":
    original_publish = writer.publish
    def publish(self, make_summary):
        stop()
        return original_publish(self, make_summary)
    writer.publish = publish
if os.environ.get("FIXED_START"):
    original_init = writer.__init__
    def init(self, root, outfmt="TXT", dirname=None, started=None):
        original_init(self, root, outfmt, dirname, started=float(os.environ["FIXED_START"]))
    writer.__init__ = init
sys.exit(run(os.environ.get("STEP", "infer"), sys.argv[1:]))
'''


def start_held_infer(tmp: Path, args: list, hold_at: str, action: str = "sleep", extra_env: dict | None = None,
                     tag: str = "run") -> tuple[subprocess.Popen, Path]:
    """Start the harness; returns the process and the marker file it touches when it is held."""
    script = tmp / "held_infer.py"
    script.write_text(HARNESS, encoding="utf-8")
    mark = tmp / f"{tag}.held"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOLD_AT": hold_at, "ACTION": action, "MARK": str(mark),
           **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env, cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, mark


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before reaching the hold point:\n{proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("run did not reach the hold point in time")
        time.sleep(0.02)


def edit_outputs(folder: Path, target: Path, edits: dict) -> Path:
    """A copy of result folder `folder` (its summary too, so it keeps its recorded features) at
    `target`, with the logits of sample i replaced by `edits[i]` in the folder's own format."""
    import shutil

    import numpy as np

    from tinybert.resultdir import format_txt

    shutil.copytree(folder, target)
    shutil.copy(folder.parent / f"{folder.name}_summary.json", target.parent / f"{target.name}_summary.json")
    for index, values in edits.items():
        [path] = target.glob(f"input{index}_0.*")
        row = np.asarray([values], dtype=np.float32)
        if path.suffix == ".txt":
            path.write_text(format_txt(row), encoding="ascii")
        elif path.suffix == ".bin":
            row.tofile(path)
        else:
            np.save(path, row)
    return target
