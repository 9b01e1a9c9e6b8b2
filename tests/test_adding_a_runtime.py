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


# ---------------------------------------------------------------- a runtime with its own model format

TOY_FILE = "toy-file"


class ToyFileRuntime(ToyRuntime):
    """The toy, run from a model file of its own kind: an offset the exporter wrote, added to every logit."""

    name = TOY_FILE

    def __init__(self, model_path: str, threads: int | None = None):
        super().__init__(model_path, threads)
        with open(model_path, "rb") as handle:
            self.offset = np.load(handle)

    def run(self, input_ids, segment_ids, input_mask):
        return toy_logits(input_ids, input_mask) + self.offset


def export_toy_file(job) -> None:
    """The toy kind's exporter: the checkpoint's weights file size, mod 5, as the offset (rewritten when stale)."""
    import os

    from tinybert.export.checking import stale
    from tinybert.fileio import atomic_path
    from tinybert.model.modeling import weights_path
    from tinybert.model_kinds import model_path

    target = model_path("toy_file", job.out_dir)
    if stale([target], weights_path(job.ckpt_dir)):
        os.makedirs(job.out_dir, exist_ok=True)
        with atomic_path(target) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.float32(os.path.getsize(weights_path(job.ckpt_dir)) % 5))


def quantize_toy_file(fp32_onnx: str, target: str, calibration_batches) -> None:
    """The toy kind's quantizer for its roofline chain: the chain's weights, rounded to float16."""
    import onnx
    from onnx import numpy_helper

    mats = [numpy_helper.to_array(t) for t in onnx.load(fp32_onnx).graph.initializer]
    with open(target, "wb") as handle:
        np.savez(handle, *[m.astype(np.float16) for m in mats])


def toy_file_chain(model: str, *, precision: str, threads: int, requests: int):
    """The chain from the kind's quantized file."""
    with np.load(model) as saved:
        weights = [saved[f"arr_{i}"].astype(np.float32) for i in range(len(saved.files))]
    return toy_chain(weights, precision=precision, threads=threads, requests=requests)


def _toy_file_records():
    from tinybert.model_kinds import ModelKind

    kind = ModelKind("toy_file", "TinyBERT_toy.npy", "the toy's own format", exporter=export_toy_file,
                     quantizer=quantize_toy_file)
    runtime = Runtime(name=TOY_FILE, module=__name__, cls="ToyFileRuntime", title="numpy, from its own model file",
                      package=Package("numpy", "pip install numpy"),
                      chains=(Chain("fp32", "numpy matmul on float16 weights", f"{__name__}:toy_file_chain",
                                    model="toy_file"),))
    path = RunPath(row="TF", name="toy_file", title="the toy runtime on its own model file", runtime=TOY_FILE,
                   model="toy_file", role=Role.PROJECT, cls_only=True)
    return kind, runtime, path


def test_a_runtime_with_its_own_model_kind_is_exported_prepared_and_run(small_inputs, small_features, tmp_path):
    from tinybert.bench.shape_graphs import build_runner, inputs, weights
    from tinybert.cli.main import run
    from tinybert.data.features import load_features
    from tinybert.model_kinds import MODEL_KINDS
    from tinybert.results.resultdir import read_logits

    kind, runtime, path = _toy_file_records()
    models = tmp_path / "models"
    with registry.registered(kind, runtime, path):
        code = run("infer", ["--ort_model", "toy_file", "--model_dir", str(models), "--ckpt_dir",
                             str(small_inputs.checkpoint), "--input", input_arg(small_features), "--output",
                             str(tmp_path), "--output_dirname", "toy", "--outfmt", "NPY", "--batchsize", "4",
                             "--no_progress"])
        assert code == 0 and (models / "TinyBERT_toy.npy").is_file()  # the prepare step ran the kind's exporter
        x = inputs(3)
        expected = np.maximum(np.maximum(x @ weights()[0], 0) @ weights()[1], 0) @ weights()[2]
        chain = build_runner(TOY_FILE, "fp32", 1, 1, str(tmp_path))  # shape_graphs ran the kind's quantizer
        assert (tmp_path / "chain_toy_file.npy").is_file()
        assert np.allclose(chain(x), expected, rtol=2e-2, atol=2e-2)
    assert kind not in MODEL_KINDS and runtime not in registry.RUNTIMES and path not in registry.PATHS
    features, _ = load_features(str(small_features))
    ids, _, mask = features.batch(slice(None))
    offset = np.float32((small_inputs.checkpoint / "pytorch_model.bin").stat().st_size % 5)
    logits = read_logits(str(tmp_path / "toy"), [f"input{i}" for i in range(SMALL_COUNT)])
    assert np.array_equal(logits, toy_logits(ids, mask) + offset)
