"""Fixtures: the shared SST-2 dev set and demo checkpoint when `../shared` is beside the checkout,
a small generated TSV and checkpoint in the TinyBERT release layout otherwise."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import write_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_TSV = SHARED / "data" / "SST-2" / "dev.tsv"
SHARED_CHECKPOINT = SHARED / "models" / "tinybert-sst2-demo"

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("the a an movie film is was very not good bad great awful fun boring story acting plot but and "
         "it 's , . ! ? - \" ( ) cafe naive love hate charm ##ing ##ly ##s ##ed 中 文").split()


@dataclass(frozen=True)
class Inputs:
    tsv: Path
    checkpoint: Path
    real: bool  # the genuine dev set and demo checkpoint


def make_small_tsv(path: Path, count: int = 37, seed: int = 0) -> Path:
    """Labelled sentences over the small vocabulary, one far longer than 64 tokens."""
    rng = random.Random(seed)
    plain = [w for w in WORDS if not w.startswith("##")]
    lines = ["sentence\tlabel"]
    for i in range(count):
        length = 80 if i == 5 else rng.randint(1, 20)
        words = [rng.choice(plain) for _ in range(length)]
        if i % 7 == 0:
            words.append("Café NAÏVE charming")
        lines.append(f"{' '.join(words)} \t{rng.randint(0, 1)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_inputs(tmp_path_factory) -> Inputs:
    root = tmp_path_factory.mktemp("small")
    checkpoint = root / "SST-2_model"
    write_checkpoint(str(checkpoint), SPECIALS + WORDS)
    return Inputs(make_small_tsv(root / "dev.tsv"), checkpoint, real=False)


@pytest.fixture(scope="session")
def inputs(small_inputs) -> Inputs:
    """The genuine data when available, else the generated stand-ins."""
    if SHARED_TSV.is_file() and (SHARED_CHECKPOINT / "pytorch_model.bin").is_file():
        return Inputs(SHARED_TSV, SHARED_CHECKPOINT, real=True)
    return small_inputs


@pytest.fixture
def checkpoint_copy(small_inputs, tmp_path) -> Path:
    """A writable copy of the generated checkpoint, for tests that damage it."""
    target = tmp_path / "ckpt"
    shutil.copytree(small_inputs.checkpoint, target)
    return target


def run_cli(*args, cwd=None, env=None, check=False) -> subprocess.CompletedProcess:
    """`python -m tinybert ...` in a subprocess, as the shell scripts call it."""
    merged = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "tinybert", *map(str, args)], cwd=cwd, env=merged,
                          capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def run_script(name: str, *args, cwd, env=None) -> subprocess.CompletedProcess:
    """`bash test/<name> ...` with this interpreter as PYTHON."""
    merged = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(["bash", str(REPO / "test" / name), *map(str, args)], cwd=cwd, env=merged,
                          capture_output=True, text=True)


def assert_clean_error(proc: subprocess.CompletedProcess, *fragments: str, code: int | None = None) -> None:
    """A non-zero exit with a one-line style message containing every fragment, and no traceback."""
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    if code is not None:
        assert proc.returncode == code, output
    assert "Traceback" not in output, output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in:\n{output}"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long end-to-end runs (deselect with -m 'not slow')")
