"""Adding a runtime is its module, its registry records and its tests: a toy runtime (numpy) and its roofline chain,
defined in this file and registered with one path through the registry's API, runs infer, the benchmark's rows and
the roofline, with no other file edited."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SMALL_COUNT, input_arg

from tinybert import registry
from tinybert.registry import CHECKPOINT, Chain, Package, Role, RunPath, Runtime
from tinybert.runtimes.interface import RuntimeBase, problems

TOY = "toy-numpy"


class ToyRuntime(RuntimeBase):
    """Logits from the token ids alone: not a model, but a runtime the pipeline cannot tell from one."""

    name = TOY
    batch_size = None
    seq_len = None
    requests = 1
    threads: int

    def __init__(self, model_path: str, threads: int | None = None):
        self.model_path, self.threads = model_path, threads or 1

    def run(self, input_ids, segment_ids, input_mask):
        return toy_logits(input_ids, input_mask)


def toy_logits(input_ids, input_mask) -> np.ndarray:
    score = ((input_ids * input_mask).sum(axis=1) % 7 - 3).astype(np.float32)
    return np.stack([-score, score], axis=1)


def toy_chain(weights, *, precision: str, threads: int, requests: int):
    """The roofline's chain in numpy: matrix multiplies, relus between."""
    def run(x):
        for i, w in enumerate(weights):
            x = x @ w
            x = np.maximum(x, 0) if i < len(weights) - 1 else x
        return x
    return run


RUNTIME = Runtime(name=TOY, module=__name__, cls="ToyRuntime", title="numpy, as a test adds a runtime",
                  package=Package("numpy", "pip install numpy"),
                  chains=(Chain("fp32", "numpy matmul", f"{__name__}:toy_chain"),))
PATH = RunPath(row="T", name="toy", title="the toy runtime on the checkpoint folder", runtime=TOY, model=CHECKPOINT,
               role=Role.PEER, cls_only=True)


@pytest.fixture
def toy():
    with registry.registered(RUNTIME, PATH):
        yield
    assert RUNTIME not in registry.RUNTIMES and PATH not in registry.PATHS  # the registry as it was


def test_the_toy_is_a_runtime_its_path_and_needs_are_known(toy):
    from tinybert.bench.rows import row
    from tinybert.runtimes.needs import unmet_needs
    from tinybert.runtimes.route import plan_path

    assert problems(ToyRuntime) == [] and registry.runtime(TOY) is RUNTIME
    assert row("T") is PATH and list(unmet_needs(PATH)) == []
    plan = plan_path("toy", ckpt_dir="ckpt", threads=2)
    assert (plan.runtime, plan.model, plan.options) == (TOY, "ckpt", {"threads": 2})
    runtime = plan.open()
    assert isinstance(runtime, ToyRuntime) and runtime.threads == 2


def test_a_name_taken_is_refused_and_nothing_is_added():
    from tinybert.errors import UsageError

    with pytest.raises(UsageError, match="expected a runtime name not among .*onnxruntime.*, got 'onnxruntime'"):
        with registry.registered(RUNTIME, Runtime(name="onnxruntime", module=__name__, cls="ToyRuntime", title="",
                                                  package=RUNTIME.package)):
            pass
    assert RUNTIME not in registry.RUNTIMES


def test_infer_runs_the_toy(toy, small_inputs, small_features, tmp_path):
    from tinybert.cli.main import run
    from tinybert.results.resultdir import read_logits
    from tinybert.data.features import load_features

    code = run("infer", ["--model", str(small_inputs.checkpoint), "--runtime", TOY, "--input", input_arg(small_features),
                         "--output", str(tmp_path), "--output_dirname", "toy", "--outfmt", "NPY", "--batchsize", "4",
                         "--no_progress"])
    assert code == 0
    features, _ = load_features(str(small_features))
    ids, _, mask = features.batch(slice(None))
    logits = read_logits(str(tmp_path / "toy"), [f"input{i}" for i in range(SMALL_COUNT)])
    assert np.array_equal(logits, toy_logits(ids, mask))


def test_the_roofline_runs_the_toy_chain(toy, tmp_path):
    from tinybert.bench.roofline import Timing, model_shape_rate, row_recipe
    from tinybert.bench.shape_graphs import build_runner, inputs, weights
    from tinybert.errors import UsageError

    assert row_recipe(PATH) == (TOY, "fp32")
    x = inputs(5)
    expected = np.maximum(np.maximum(x @ weights()[0], 0) @ weights()[1], 0) @ weights()[2]
    assert np.allclose(build_runner(TOY, "fp32", 1, 1, str(tmp_path))(x), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(UsageError, match="toy-numpy: expected one call at a time .*, got 2 requests"):
        build_runner(TOY, "fp32", 2, 2, str(tmp_path))  # its record takes no REQUESTS: one check for every chain
    rate = model_shape_rate(TOY, "fp32", [8], threads=1, timing=Timing(0.0, 1, 0.0))
    assert rate["recipe"] == "numpy matmul" and rate["layouts"] == {"one_call": "one call on 1 thread(s)"}
    assert rate["by_m"][0]["best"] > 0


def test_the_benchmark_measures_the_toy_row(toy, small_inputs, tmp_path):
    from tinybert.bench.benchmark import BenchmarkRun, Timing, run_benchmark

    run = BenchmarkRun(str(small_inputs.checkpoint), str(small_inputs.tsv), str(tmp_path / "out"), (4,), repeats=1,
                       plot=False, rows=("T",), roofline_timing=Timing(0.0, 1, 0.0), work_dir=str(tmp_path / "work"))
    report = run_benchmark(run)
    toy_row = next(r for r in report["results"] if r["row"] == "T")
    assert [r["row"] for r in report["results"]] == ["A", "T"]  # the baseline first, as for every row
    assert (toy_row["role"], toy_row["runtime"], toy_row["gate"], toy_row["sentences"]) == ("peer", TOY, None,
                                                                                              SMALL_COUNT)
    assert toy_row["own_recipe"] == f"{TOY} fp32" and toy_row["own_rate"] > 0 and toy_row["sentences_per_s"] > 0
    assert report["model_shape_rates"][f"{TOY} fp32"]["recipe"] == "numpy matmul"
