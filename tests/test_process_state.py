"""The process-state guard (conftest's hooks, tests/process_state.py): a test that leaves torch's configs, the
environment, the working directory, the signal handlers or the capabilities fakes changed fails naming them, and
the tests after it in the same process run as they would alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

LEAKY = '''
import os
import signal

import torch._inductor.config as inductor

from tinybert import capabilities


def test_monkeypatches_a_torch_config(monkeypatch):
    # Deliberately the wrong way, in the file the subprocess runs: the leak the guard must catch (the undo deletes it).
    monkeypatch.setattr(inductor, "fx_graph_cache", False)


HELD = []


def test_leaves_a_variable_and_a_fake():
    os.environ["TINYBERT_LEAKED"] = "1"
    HELD.append(capabilities.faked(profile="amx"))
    HELD[-1].__enter__()


def test_leaves_a_handler_and_the_cwd(tmp_path):
    signal.signal(signal.SIGTERM, lambda *_: None)
    os.chdir(tmp_path)


def test_after_them_everything_is_back():
    assert inductor.fx_graph_cache in (True, False)  # readable: not hidden
    assert "TINYBERT_LEAKED" not in os.environ and not capabilities.fake._faked


def test_patch_is_the_way(monkeypatch):
    monkeypatch.setenv("TINYBERT_SCOPED", "1")
    with inductor.patch(fx_graph_cache=False):
        assert not inductor.fx_graph_cache
'''


@pytest.mark.slow
def test_the_guard_fails_each_leak_and_puts_the_state_back(tmp_path):
    (tmp_path / "test_leaky.py").write_text(LEAKY, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                           "-p", "no:randomly", str(tmp_path / "test_leaky.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "5 passed, 3 errors" in out, out
    assert "torch._inductor.config.fx_graph_cache deleted" in out, out
    assert "os.environ['TINYBERT_LEAKED']: None -> '1'" in out and "capabilities fakes in force: 0 -> 1" in out, out
    assert "signal handler of SIGTERM" in out and "working directory" in out, out
    assert "ERROR" in out and "test_patch_is_the_way" not in out.split("short test summary")[-1], out
