"""Interrupted and concurrent inference runs: a run stopped at any point (SIGKILL, SIGTERM, SIGINT,
a crash) leaves no result folder that postprocess accepts, running again works, and runs started
in the same second each get their own folder without touching earlier ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, assert_clean_error, input_arg, run_cli

pytestmark = pytest.mark.slow  # every test runs and signals several child processes

BATCH = 4

# Runs `python -m tinybert $STEP ARGS` (STEP: infer, the default, or preprocess) with one step of
# the writers patched (HOLD_AT):
#   write:N  - before the N-th output file;   summary - right after the summary is written;
#   publish  - before the final name is reserved;
#   manifest - preprocess: after every feature file, before the feature folder is renamed into place.
# There it touches $MARK, then either sleeps (ACTION=sleep: the test signals it), raises
# (ACTION=crash), or waits for $GO to exist (ACTION=wait_go: several runs publish at once).
# FIXED_START pins the run's start time, so concurrent runs want the same timestamped name.
HARNESS = r'''
import os, pathlib, signal, sys, time
from tinybert.data import features
from tinybert.results import resultdir
from tinybert.cli.main import run

# A parent started in the background by a non-interactive shell passes SIGINT on as ignored; the
# test needs Python's usual Ctrl-C behaviour.
signal.signal(signal.SIGINT, signal.default_int_handler)
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
        # Short naps, not one long sleep: Python runs signal handlers in the main thread only, and
        # a signal the kernel hands to one of onnxruntime's threads waits until the main thread
        # next runs Python code (a 120 s sleep outlasted the test's 60 s wait).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.05)

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


@pytest.fixture
def setup(small_features, small_onnx_bs4):
    """The generated features and the static bs 4 model of them (read-only: runs write elsewhere)."""
    return small_features, small_onnx_bs4


def _infer_args(setup, root):
    bin_dir, model = setup
    return ["--model", model, "--input", input_arg(bin_dir), "--output", root, "--batchsize", BATCH, "--no_progress"]


def _published(root) -> list[str]:
    return sorted(n for n in os.listdir(root) if not n.startswith(".")) if root.exists() else []


def _staging(root) -> list[str]:
    return sorted(n for n in os.listdir(root) if n.startswith(".result.partial-") and (root / n).is_dir())


def _postprocess(setup, folder):
    return run_cli("postprocess", folder, "--bin_dir", setup[0])


def _scores(setup, folder):
    """postprocess accepts the folder: an accuracy over all 37 samples of the features."""
    scored = _postprocess(setup, folder)
    assert scored.returncode == 0, scored.stderr
    assert "[INFO] accuracy:" in scored.stdout and "/37 samples correct" in scored.stdout, scored.stdout


def _rerun_succeeds(setup, root):
    proc = run_cli("infer", *_infer_args(setup, root))
    assert proc.returncode == 0, proc.stderr
    folder = proc.stdout.split("outputs written to ")[1].strip()
    _scores(setup, folder)
    return folder


@pytest.mark.parametrize("signum, code, message", [
    (signal.SIGTERM, 143, "terminated; no partial results were kept"),
    (signal.SIGINT, 130, "interrupted; no partial results were kept"),
])
@pytest.mark.parametrize("hold_at", ["write:10", "summary"])
def test_a_signalled_run_cleans_up_and_a_rerun_works(setup, tmp_path, signum, code, message, hold_at):
    root = tmp_path / "result"
    proc, mark = start_held_infer(tmp_path, _infer_args(setup, root), hold_at)
    wait_for(mark, proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert message in stderr and "Traceback" not in stderr
    assert os.listdir(root) == []  # no outputs, no summary, no staging folder
    _rerun_succeeds(setup, root)


def test_a_killed_run_leaves_nothing_postprocess_accepts(setup, tmp_path):
    root = tmp_path / "result"
    proc, mark = start_held_infer(tmp_path, _infer_args(setup, root), "write:10")
    wait_for(mark, proc)
    proc.kill()  # SIGKILL: no cleanup code runs at all
    proc.wait(timeout=60)
    assert _published(root) == []
    staging = _staging(root)
    assert len(staging) == 1 and len(os.listdir(root / staging[0])) == 9
    assert (root / f"{staging[0]}.lock").is_file()  # the liveness lock lives beside the folder
    assert_clean_error(_postprocess(setup, root / staging[0]), "staging folder of an unfinished", code=2)
    _rerun_succeeds(setup, root)


def test_a_run_killed_while_publishing_is_refused_then_rerun_gets_a_new_name(setup, tmp_path):
    root = tmp_path / "result"
    proc, mark = start_held_infer(tmp_path, _infer_args(setup, root), "summary")
    wait_for(mark, proc)
    proc.kill()  # between the summary and the rename of the outputs into the reserved folder
    proc.wait(timeout=60)
    [reserved] = [n for n in _published(root) if os.path.isdir(root / n)]
    assert (root / f"{reserved}_summary.json").is_file() and os.listdir(root / reserved) == []
    assert_clean_error(_postprocess(setup, root / reserved), reserved, "empty folder", code=2)
    folder = _rerun_succeeds(setup, root)
    assert os.path.basename(folder) != reserved


def test_a_crash_while_writing_outputs_publishes_nothing(setup, tmp_path):
    root = tmp_path / "result"
    proc, mark = start_held_infer(tmp_path, _infer_args(setup, root), "write:10", action="crash")
    _, stderr = proc.communicate(timeout=120)
    assert mark.exists() and proc.returncode == 1 and "simulated crash" in stderr
    assert os.listdir(root) == []
    _rerun_succeeds(setup, root)


def test_runs_started_in_the_same_second_never_share_a_folder(setup, tmp_path):
    root = tmp_path / "result"
    started = 1_700_000_000.0
    earlier_name = "2023_11_14-22_13_20"  # what that start time gives in UTC
    env = {"FIXED_START": str(started), "GO": str(tmp_path / "go"), "TZ": "UTC"}
    root.mkdir()
    (root / earlier_name).mkdir()
    (root / earlier_name / "keep.txt").write_text("an earlier run")
    runs = [start_held_infer(tmp_path, _infer_args(setup, root), "publish", "wait_go", env, tag=f"r{i}")
            for i in range(3)]
    for proc, mark in runs:
        wait_for(mark, proc, timeout=120)
    (tmp_path / "go").touch()  # all three reserve their names at the same moment
    folders = []
    for proc, _ in runs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        folders.append(stdout.split("outputs written to ")[1].strip())
    assert sorted(os.path.basename(f) for f in folders) == [f"{earlier_name}-{i}" for i in (1, 2, 3)]
    assert (root / earlier_name / "keep.txt").read_text() == "an earlier run"
    for (proc, _), folder in zip(runs, folders):
        summary = json.loads((root / f"{os.path.basename(folder)}_summary.json").read_text())
        assert summary["pid"] == proc.pid  # each summary sits beside its own run's outputs
        _scores(setup, folder)


def test_concurrent_named_runs_one_wins_the_other_refuses(setup, tmp_path):
    root = tmp_path / "result"
    env = {"GO": str(tmp_path / "go")}
    args = [*_infer_args(setup, root), "--output_dirname", "named"]
    runs = [start_held_infer(tmp_path, args, "publish", "wait_go", env, tag=f"n{i}") for i in range(2)]
    for proc, mark in runs:
        wait_for(mark, proc, timeout=120)
    (tmp_path / "go").touch()
    results = []
    for proc, _ in runs:
        stdout, stderr = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    assert sorted(r.returncode for r in results) == [0, 2]
    assert_clean_error(next(r for r in results if r.returncode), "named", "refusing to overwrite")
    assert _published(root) == ["named", "named_summary.json"]
    _scores(setup, root / "named")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.parametrize("overwrite", [False, True])
def test_an_interrupted_preprocess_never_leaves_half_a_feature_folder(small_inputs, setup, tmp_path, signum, overwrite):
    """Stopped after every feature file is written but before the folder is renamed into place."""
    out = tmp_path / "bert_bin"
    vocab = small_inputs.checkpoint / "vocab.txt"
    if overwrite:  # replacing features made from another file
        other = tmp_path / "other.tsv"
        other.write_text("sentence\tlabel\ngood film \t1\n", encoding="utf-8")
        run_cli("preprocess", "--input_file", other, "--vocab_file", vocab, "--output_dir", out, check=True)
    args = ["--input_file", small_inputs.tsv, "--vocab_file", vocab, "--output_dir", out, "--no_progress",
            *(["--overwrite"] if overwrite else [])]
    proc, mark = start_held_infer(tmp_path, args, "manifest", extra_env={"STEP": "preprocess"})
    wait_for(mark, proc)
    proc.send_signal(signum)
    proc.communicate(timeout=60)
    assert proc.returncode == (-9 if signum == signal.SIGKILL else 143)
    assert out.exists() == overwrite  # only ever the complete earlier features, or nothing
    if overwrite:
        assert json.loads((out / "manifest.json").read_text())["num_samples"] == 1
    else:
        assert_clean_error(run_cli("infer", *_infer_args((out, setup[1]), tmp_path / "result")),
                           "bert_bin", "run test/preprocess_data.sh first")
    rerun = run_cli("preprocess", *args)
    assert rerun.returncode == 0, rerun.stderr
    # a killed run's staging folder is removed by the next run; a terminated one removed its own
    assert ("removed 1 stale staging folder(s)" in rerun.stdout) == (signum == signal.SIGKILL)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".bert_bin")]
    assert json.loads((out / "manifest.json").read_text())["num_samples"] == 37
    infer = run_cli("infer", *_infer_args((out, setup[1]), tmp_path / "result"))
    assert infer.returncode == 0 and "[INFO] 37 outputs written to" in infer.stdout, infer.stderr


def _kill_at_write(setup, tmp_path, root, *tags):
    """Runs held together while writing outputs, then all SIGKILLed (each would clean the others' up)."""
    runs = [start_held_infer(tmp_path, _infer_args(setup, root), "write:10", tag=tag) for tag in tags]
    for proc, mark in runs:
        wait_for(mark, proc)
    for proc, _ in runs:
        proc.kill()
        proc.wait(timeout=60)


def test_the_next_run_removes_what_killed_runs_left(setup, tmp_path):
    root = tmp_path / "result"
    _kill_at_write(setup, tmp_path, root, "k1", "k2")
    assert len(_staging(root)) == 2
    proc = run_cli("infer", *_infer_args(setup, root))
    assert proc.returncode == 0, proc.stderr
    assert f"[INFO] removed 2 stale staging folder(s) left by killed runs in {root}" in proc.stdout
    assert not [n for n in os.listdir(root) if n.startswith(".")]  # no folder, no lock file


def test_a_run_in_progress_keeps_its_staging_folder_while_another_cleans_up(setup, tmp_path):
    root = tmp_path / "result"
    live, mark = start_held_infer(tmp_path, _infer_args(setup, root), "write:10", "wait_go",
                                  {"GO": str(tmp_path / "go")}, tag="live")
    wait_for(mark, live)
    [held] = _staging(root)
    _kill_at_write(setup, tmp_path, root, "dead")  # started while the live run was held: it kept that one
    [dead] = [n for n in _staging(root) if n != held]
    other = run_cli("infer", *_infer_args(setup, root))
    assert other.returncode == 0, other.stderr
    assert "removed 1 stale staging folder(s)" in other.stdout
    assert not (root / dead).exists() and not (root / f"{dead}.lock").exists()
    assert len(os.listdir(root / held)) == 9 and (root / f"{held}.lock").is_file()  # untouched
    (tmp_path / "go").touch()
    stdout, stderr = live.communicate(timeout=120)
    assert live.returncode == 0, stderr
    assert "removed" not in stdout  # it found nothing stale when it started
    folders = [other.stdout.split("outputs written to ")[1].strip(), stdout.split("outputs written to ")[1].strip()]
    assert folders[0] != folders[1]
    for folder in folders:
        assert _postprocess(setup, folder).returncode == 0
    assert not [n for n in os.listdir(root) if n.startswith(".")]
