"""Fixtures and helpers shared by the test files.

Inputs: the shared SST-2 dev set and demo checkpoint when `../shared` is beside the checkout, a
small generated TSV and checkpoint in the TinyBERT release layout otherwise. Built once per
session: the generated inputs, their features and a static ONNX model of them. Tests marked
`slow` export models, run the shell pipeline or spawn many processes; `-m "not slow"` skips them.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# The workers share the cores: OpenMP threads that spin after each parallel region would take them from the other
# worker's computation. Set before torch loads its OpenMP runtime, which reads it once; child processes inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import process_state  # noqa: E402
from reference import write_checkpoint  # noqa: E402

from tinybert import INPUT_NAMES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# TINYBERT_TEST_SHARED points the tests at another shared folder; a path without the data (e.g.
# /nonexistent) runs them as on a clean clone, with the generated inputs only.
SHARED = Path(os.environ.get("TINYBERT_TEST_SHARED") or REPO.parent / "shared")
SHARED_TSV = SHARED / "data" / "SST-2" / "dev.tsv"
SHARED_CHECKPOINT = SHARED / "models" / "tinybert-sst2-demo"
SHARED_COUNT = 872  # sentences in the GLUE SST-2 dev set
SMALL_COUNT = 37  # sentences in the generated TSV

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("the a an movie film is was very not good bad great awful fun boring story acting plot but and "
         "it 's , . ! ? - \" ( ) cafe naive love hate charm ##ing ##ly ##s ##ed 中 文").split()

# Sentences as SST-2 has them plus the awkward ones: quotes (text, never quoting: the unbalanced one
# would swallow the following lines under csv's default dialect), accents, CJK, an empty sentence
# and one far longer than 64 tokens.
AWKWARD_ROWS = [
    ("it 's a charming and often affecting journey . ", "1"),
    ('the " plot " is " awful , but the acting is great fun ', "1"),
    ('"unbalanced quote and a boring story ', "0"),
    ("Café NAÏVE charm ... 中文 movie ", "1"),
    ("", "0"),
    (" ".join(["the very good movie"] * 30), "1"),
    ("'s not ( bad ) ! ? - but not great either", "0"),
]


# The files that take longest (docs/measurements/tests-intel-2vcpu.md), handed out first: `--dist loadfile` gives
# each worker the next file when it is free, so a long file started last would leave the other worker idle. The
# second file needs no shared export, so the other worker does not wait while the first one makes it.
LONGEST_FILES = ("test_real_eval.py", "test_gpu_all.py", "test_real_numbers.py", "test_gpu.py", "test_classify_gpu.py",
                 "test_pipeline.py", "test_torch_peer_runtime.py", "test_classify_model.py", "test_gpu_bench.py",
                 "test_corpora.py", "test_classify_resume.py", "test_settings.py", "test_classify.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: place for place, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_configure(config):
    # xdist would otherwise reorder the files by their number of tests, undoing LONGEST_FILES.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    # Inductor writes its cache folder into the environment at its first compile: decided here, once, as the
    # program decides it at its start, so no test's first compile changes the environment of the tests after it.
    from tinybert.machine import use_compile_cache

    use_compile_cache()
    config.addinivalue_line(
        "markers", "slow: exports models, runs the shell pipeline or many subprocesses (seconds to minutes); "
                   "deselect with -m \"not slow\"")


# --- the process-state guard -------------------------------------------------------------------------

_BEFORE = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    """Snapshot before anything of the test runs, its fixtures (of any scope) included."""
    item.stash[_BEFORE] = process_state.snapshot()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After the test and its fixtures' teardown: whatever it left changed fails it (an error at teardown) and is
    put back, so the tests after it in this worker run as they would alone."""
    result = yield
    before = item.stash.get(_BEFORE, None)
    if before is not None:
        left = process_state.changes(before, process_state.snapshot())
        if left:
            process_state.restore(before)
            pytest.fail("the test left process-wide state changed (restore it, or change torch configs through "
                        "their own patch()):\n  " + "\n  ".join(left), pytrace=False)
    return result


@dataclass(frozen=True)
class Inputs:
    tsv: Path
    checkpoint: Path
    real: bool  # the genuine dev set and demo checkpoint
    count: int  # sentences in tsv


def make_small_tsv(path: Path, count: int = SMALL_COUNT, seed: int = 0, long_at: int | None = 5) -> Path:
    """Labelled sentences over the small vocabulary, one (the 6th; `long_at`, None for none) far longer than 64 tokens."""
    rng = random.Random(seed)
    plain = [w for w in WORDS if not w.startswith("##")]
    lines = ["sentence\tlabel"]
    for i in range(count):
        length = 80 if i == long_at else rng.randint(1, 20)
        words = [rng.choice(plain) for _ in range(length)]
        if i % 7 == 0:
            words.append("Café NAÏVE charming")
        lines.append(f"{' '.join(words)} \t{rng.randint(0, 1)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tsv_bytes(rows, header=("sentence", "label"), newline="\n", bom=False, trailing="") -> bytes:
    """A TSV file's bytes: header and rows joined by tabs, in the given line ending."""
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    return (("\ufeff" if bom else "") + newline.join(lines) + newline + trailing).encode("utf-8")


def input_dirs(bin_dir: Path) -> list[str]:
    """The three feature folders, in model input order."""
    return [str(bin_dir / name) for name in INPUT_NAMES]


def input_arg(bin_dir: Path) -> str:
    """`--input` of the infer step for a feature folder."""
    return ",".join(input_dirs(bin_dir))


# --- session fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def small_inputs(tmp_path_factory) -> Inputs:
    root = tmp_path_factory.mktemp("small")
    checkpoint = root / "SST-2_model"
    write_checkpoint(str(checkpoint), SPECIALS + WORDS)
    return Inputs(make_small_tsv(root / "dev.tsv"), checkpoint, real=False, count=SMALL_COUNT)


@pytest.fixture(scope="session")
def inputs(small_inputs) -> Inputs:
    """The genuine data when available, else the generated stand-ins."""
    if SHARED_TSV.is_file() and (SHARED_CHECKPOINT / "pytorch_model.bin").is_file():
        return Inputs(SHARED_TSV, SHARED_CHECKPOINT, real=True, count=SHARED_COUNT)
    return small_inputs


@pytest.fixture(scope="session")
def small_features(small_inputs, tmp_path_factory) -> Path:
    """Features (bert_bin) of the generated TSV, seq_len 64. Read-only: copy before damaging."""
    from tinybert.data.features import preprocess

    out = tmp_path_factory.mktemp("small_features") / "bert_bin"
    preprocess(str(small_inputs.tsv), str(small_inputs.checkpoint / "vocab.txt"), str(out), 64, progress=False)
    return out


@pytest.fixture(scope="session")
def small_onnx_bs4(small_inputs, small_features, tmp_path_factory) -> Path:
    """TinyBERT_sim_bs4.onnx of the generated checkpoint: static [4, 64], as test/pth2onnx.sh writes it
    (TinyBERT_bs4.onnx beside it)."""
    from tinybert.export import export

    out = tmp_path_factory.mktemp("small_onnx")
    return Path(export(str(small_inputs.checkpoint), 4, str(out), features_dir=str(small_features)).simplified_path)


@pytest.fixture(scope="session")
def small_result(small_inputs, small_features, tmp_path_factory) -> Path:
    """Result folder `runA` (with runA_summary.json beside it) of the generated features, by the PyTorch
    backend at bs 8. Read-only: copy before damaging."""
    from tinybert.steps.inference import run_inference

    root = tmp_path_factory.mktemp("small_result")
    report = run_inference(str(small_inputs.checkpoint), input_dirs(small_features), str(root / "result"), 8,
                           runtime="pytorch", output_dirname="runA", progress=False)
    return Path(report.result_dir)


@pytest.fixture(scope="session")
def awkward_manifest(small_inputs, tmp_path_factory) -> dict:
    """The manifest of AWKWARD_ROWS written as a plain LF file, for comparing the variants against."""
    from tinybert.data.features import preprocess

    root = tmp_path_factory.mktemp("awkward")
    (root / "dev.tsv").write_bytes(tsv_bytes(AWKWARD_ROWS))
    return preprocess(str(root / "dev.tsv"), str(small_inputs.checkpoint / "vocab.txt"), str(root / "bin"), 64,
                      progress=False)


def shared_once(tmp_path_factory, name: str, make) -> Path:
    """Folder `name`, made once by `make(folder)` for the whole run: xdist's workers share it (the first to get
    the lock makes it, the others wait and read it). Read-only: copy before writing into it."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    target = root / f"shared-{name}"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".made").is_file():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            make(target)
            (target / ".made").touch()
    return target


def fast_models_of(inputs: Inputs, tmp_path_factory) -> Path:
    """The fast models (dynamic, sim_dynamic, fast, int8, with their gate records) of `inputs`' checkpoint, exported
    once for the run and checked on its TSV's features, as test/pth2onnx.sh exports them: the same export in every
    module that needs it. Read-only: copy_models() them into a folder before running steps there."""
    from tinybert.data.dataset import file_sha256

    def make(folder):
        from tinybert.data.features import preprocess
        from tinybert.export import export_fast_models

        preprocess(str(inputs.tsv), str(inputs.checkpoint / "vocab.txt"), str(folder / "bert_bin"), 64, progress=False)
        export_fast_models(str(inputs.checkpoint), str(folder / "models"), features_dir=str(folder / "bert_bin"))

    weights = file_sha256(str(inputs.checkpoint / "pytorch_model.bin"))[:16]
    return shared_once(tmp_path_factory, f"fast-models-{weights}-{file_sha256(str(inputs.tsv))[:16]}", make) / "models"


def copy_models(models: Path, target: Path) -> Path:
    """Copies of the files in `models` in `target`, newer than the weights they were exported from (so the steps
    there use them rather than export again)."""
    target.mkdir(parents=True, exist_ok=True)
    for path in models.iterdir():
        shutil.copyfile(path, target / path.name)
    return target


@pytest.fixture(scope="session")
def small_fast_models(small_inputs, tmp_path_factory) -> Path:
    """fast_models_of the generated checkpoint and TSV. Read-only: copy before writing into it."""
    return fast_models_of(small_inputs, tmp_path_factory)


@pytest.fixture
def checkpoint_copy(small_inputs, tmp_path) -> Path:
    """A writable copy of the generated checkpoint, for tests that damage it."""
    target = tmp_path / "ckpt"
    shutil.copytree(small_inputs.checkpoint, target)
    return target


# --- helpers ----------------------------------------------------------------------------------------

def publish(root, outfmt, logits, dirname=None, started=None) -> str:
    """A result folder of `logits` (one output file per row) through the writer, as infer publishes it."""
    from tinybert.results.resultdir import ResultFolderWriter

    writer = ResultFolderWriter(str(root), outfmt, dirname, started=started)
    for index, row in enumerate(logits):
        writer.write(f"input{index}", 0, row[None, :])
    return writer.publish(lambda final: {"filesinfo": {}, "args": {}, "final": final})


def enospc_after(calls: int, code: int = errno.ENOSPC):
    """A stand-in for `open` that fails with `code` (disk full by default) once `calls` files were opened."""
    opened = []

    def fake_open(path, *args, **kwargs):
        opened.append(path)
        if len(opened) > calls:
            raise OSError(code, os.strerror(code), str(path))  # OSError picks the subclass, e.g. PermissionError
        return open(path, *args, **kwargs)
    return fake_open


def run_cli(*args, cwd=None, env=None, check=False, input=None) -> subprocess.CompletedProcess:
    """`python -m tinybert ...` in a subprocess, as the shell scripts call it."""
    merged = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "tinybert", *map(str, args)], cwd=cwd, env=merged,
                          capture_output=True, text=True, input=input)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def cli(*args, cwd=None, check=False, input=None) -> subprocess.CompletedProcess:
    """`python -m tinybert ...` in this process (the program's own main, its output captured): for steps whose test
    is about their outcome, not the process, without a new interpreter loading torch and transformers again."""
    import contextlib
    import io

    from tinybert.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    stdin = io.StringIO(input if input is not None else "")
    here = os.getcwd()
    saved_stdin = sys.stdin
    try:
        if cwd is not None:
            os.chdir(cwd)
        sys.stdin = stdin
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse's usage errors, as the interpreter would exit
                if isinstance(exc.code, str):
                    print(exc.code, file=sys.stderr)
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    finally:
        sys.stdin = saved_stdin
        os.chdir(here)
    proc = subprocess.CompletedProcess(["tinybert", *map(str, args)], code, out.getvalue(), err.getvalue())
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


# perf.sh and eval_all.sh in the tests: LOOP alone, timed twice (a spread needs two), so CI stays cheap.
QUICK_PERF = {"PERF_SECONDS": "0", "PERF_REPEATS": "2"}


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


def edit_outputs(folder: Path, target: Path, edits: dict) -> Path:
    """A copy of result folder `folder` (its summary too, so it keeps its recorded features) at
    `target`, with the logits of sample i replaced by `edits[i]` in the folder's own format."""
    import numpy as np

    from tinybert.results.resultdir import format_txt

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
