"""The roofline at the model's own shapes (tinybert/roofline.py, shape_graphs.py): the chain's FLOPs,
the int8 recipes really quantizing it, the chains opened with the runtimes' own session options and compile
config, rates measured in each thread layout (positive, not timed), rows that cannot run here skipped with the
reason, and the `roofline` step, faked CPU included."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

from tinybert.capabilities import faked
from tinybert.errors import ModelFileError, UsageError
from tinybert.bench.roofline import (Roofline, Timing, cpu_peak, model_shape_lines, model_shape_rate, peak_line,
                                     rate_at, rates_for)
from tinybert.bench.shape_graphs import SHAPES, build_runner, chain_flops, inputs, weights, write_onnx

TINY = Timing(min_time_s=0.0, samples=1, budget_s=0.0)  # rates, not timings: one call per sample


def _reference(x):
    w1, w2, w3 = weights()
    return np.maximum(np.maximum(x @ w1, 0) @ w2, 0) @ w3


def test_the_chain_is_the_model_shapes_and_its_flops_are_counted_exactly(tmp_path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(write_onnx(str(tmp_path / "chain.onnx")))
    mats = {i.name: numpy_helper.to_array(i).shape for i in model.graph.initializer}
    products = [mats[node.input[1]] for node in model.graph.node if node.op_type == "MatMul"]
    assert products == [(312, 312), (312, 1200), (1200, 312)] == [tuple(s) for s in SHAPES]
    assert chain_flops(1) == 2 * (312 * 312 + 312 * 1200 + 1200 * 312) == 1_692_288
    assert chain_flops(200) == 200 * sum(2 * k * n for k, n in products)
    run = build_runner("onnxruntime", "fp32", 1, 1, str(tmp_path))
    x = inputs(7)
    np.testing.assert_allclose(run(x), _reference(x), rtol=1e-4, atol=1e-4)  # the graph computes what is counted


@pytest.mark.parametrize("precision, quantized_ops", [("int8", {"MatMulInteger": 3}),
                                                      ("int8_static", {"DequantizeLinear": 6})])
def test_the_onnxruntime_int8_chains_are_quantized_by_the_projects_recipes(tmp_path, precision, quantized_ops):
    import onnx

    run = build_runner("onnxruntime", precision, 1, 1, str(tmp_path))
    ops = [node.op_type for node in onnx.load(str(tmp_path / f"chain_{precision}.onnx")).graph.node]
    for op, least in quantized_ops.items():
        assert ops.count(op) >= least, ops
    x = inputs(16)
    reference = _reference(x)
    assert np.abs(run(x) - reference).max() < 0.1 * np.abs(reference).max()  # int8, not garbage


def test_rates_in_both_layouts_are_positive():
    result = model_shape_rate("onnxruntime", "fp32", [3, 50], threads=2, requests=2, timing=TINY)
    assert [r["m"] for r in result["by_m"]] == [3, 50]
    assert set(result["layouts"]) == {"one_call", "concurrent"} and "2 calls in flight" in result["layouts"]["concurrent"]
    for row in result["by_m"]:
        assert row["one_call"] > 0 and row["concurrent"] > 0
        assert row["best"] == max(row["one_call"], row["concurrent"]) == row[row["best_layout"]]
    assert rate_at(result, 40) == result["by_m"][1]["best"] and rate_at(result, 1) == result["by_m"][0]["best"]
    assert result["unit"] == "GFLOP/s" and "best" not in result["layouts"]


def test_each_rate_names_the_features_of_the_cpu_profile():
    with faked(profile="amx"):
        result = model_shape_rate("onnxruntime", "int8", [8], threads=1, timing=TINY)
    assert result["features"] == "AMX-INT8" and result["unit"] == "GOP/s"
    assert set(result["layouts"]) == {"one_call"}  # one thread: nothing to share
    with faked(profile="avx512_vnni"):
        assert model_shape_rate("onnxruntime", "int8", [8], threads=1, timing=TINY)["features"] == "VNNI"


def test_rows_that_cannot_run_here_are_skipped_with_the_reason():
    pairs = [("openvino", "bf16"), ("openvino", "bf16"), ("openvino", "fp32"), ("pytorch", "fp32")]
    with faked(profile="avx2"):
        results = rates_for(pairs[:2], [4], threads=1, timing=TINY)
    assert list(results) == ["openvino bf16"]  # measured once per runtime/precision
    reason = results["openvino bf16"]["skipped"]
    assert ("native bf16" in reason and "AVX2" in reason) or "pip install openvino" in reason
    with faked(without=("openvino", "torch")):
        results = rates_for(pairs, [4], threads=1, timing=TINY)
    assert "pip install openvino" in results["openvino fp32"]["skipped"]
    assert "pip install torch" in results["pytorch fp32"]["skipped"]
    assert any("skipped" in line for line in model_shape_lines(results))
    with pytest.raises(UsageError, match="expected a runtime/precision among"):
        model_shape_rate("onnxruntime", "bf16", [4], threads=1)


@pytest.mark.slow
def test_every_runtime_and_precision_measures_here():
    """Every recipe runs here: OpenVINO bf16 under a faked AMX profile (OpenVINO then runs f32)."""
    pytest.importorskip("openvino")
    torch = pytest.importorskip("torch")
    threads_before = torch.get_num_threads()
    pairs = [("onnxruntime", "int8_static"), ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"),
             ("pytorch", "fp32"), ("pytorch", "bf16")]
    with faked(profile="amx"):
        results = rates_for(pairs, [4, 30], threads=2, requests=2, timing=TINY)
    for key, result in results.items():
        assert "skipped" not in result, result
        assert all(row["best"] > 0 for row in result["by_m"]), key
    assert set(results["openvino int8"]["layouts"]) == {"one_call", "concurrent"}
    assert set(results["pytorch bf16"]["layouts"]) == {"one_call"} and results["pytorch bf16"]["features"] == "AMX-BF16"
    assert torch.get_num_threads() == threads_before  # torch's process-wide pool is given back


@pytest.mark.slow
def test_the_openvino_int8_chain_runs_in_int8(tmp_path):
    pytest.importorskip("nncf")
    run = build_runner("openvino", "int8", 1, 1, str(tmp_path))
    x = inputs(16)
    assert np.abs(run(x) - _reference(x)).max() < 0.1 * np.abs(_reference(x)).max()
    import openvino as ov

    compiled = ov.Core().compile_model(str(tmp_path / "chain_ov_int8.xml"), "CPU")
    precisions = {str(op.get_rt_info()["runtimePrecision"].astype(str)) for op in compiled.get_runtime_model().get_ops()}
    assert {"u8", "i8"} & precisions, precisions


@pytest.mark.slow
def test_the_roofline_step_sees_the_faked_cpu_and_packages(tmp_path):
    common = ["roofline", "--batch_sizes", "1 2", "--tokens", "4", "--threads", "1", "--min_time", "0",
              "--samples", "1", "--budget", "0"]
    proc = run_cli(*common, "--pairs", "openvino/bf16", "onnxruntime/int8", "--json_out", tmp_path / "amx.json",
                   cwd=tmp_path, env={"TINYBERT_CPU_PROFILE": "amx"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "amx.json").read_text())
    assert "FAKED CPU profile 'amx'" in report["machine"] and "FAKED CPU profile 'amx'" in proc.stdout
    int8 = report["model_shape"]["onnxruntime int8"]
    assert int8["features"] == "AMX-INT8" and [r["m"] for r in int8["by_m"]] == [4, 8]
    bf16 = report["model_shape"]["openvino bf16"]
    assert bf16.get("features") == "AMX-BF16" or "pip install openvino" in bf16["skipped"]

    proc = run_cli(*common, "--pairs", "openvino/bf16", "openvino/int8", "--json_out", tmp_path / "avx2.json",
                   cwd=tmp_path, env={"TINYBERT_CPU_PROFILE": "avx2", "TINYBERT_WITHOUT": "nncf"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    skipped = {k: r["skipped"] for k, r in json.loads((tmp_path / "avx2.json").read_text())["model_shape"].items()}
    assert "native bf16" in skipped["openvino bf16"] or "pip install openvino" in skipped["openvino bf16"]
    assert "pip install nncf" in skipped["openvino int8"] or "pip install openvino" in skipped["openvino int8"]

    proc = run_cli(*common, "--pairs", "openvino/fp32", cwd=tmp_path, env={"TINYBERT_WITHOUT": "openvino"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "openvino fp32: skipped (openvino: expected it installed" in proc.stdout
    assert "install it: pip install openvino" in proc.stdout


@pytest.mark.slow  # three interpreters
def test_the_roofline_step_refuses_bad_options(tmp_path):
    assert_clean_error(run_cli("roofline", "--pairs", "tensorflow/fp32", cwd=tmp_path),
                       "expected a runtime/precision among onnxruntime fp32", code=2)
    assert_clean_error(run_cli("roofline", "--batch_sizes", "8 0", cwd=tmp_path),
                       "--batch_sizes: expected a positive integer, got '0'", code=2)
    assert_clean_error(run_cli("roofline", cwd=tmp_path, env={"TINYBERT_CPU_PROFILE": "m1"}),
                       "TINYBERT_CPU_PROFILE: expected a CPU profile among", code=2)


@pytest.mark.parametrize("profile, per_cycle", [
    ("avx2", {"fp32": 32, "bf16": 32, "int8": 64}),  # AMD Zen 2/3: two 256-bit FMA pipes; bf16 emulated in fp32
    ("avx_vnni", {"fp32": 32, "int8": 128}),  # VNNI on 256-bit registers
    ("avx512_vnni", {"fp32": 64, "int8": 256}),  # Intel: two 512-bit pipes
    ("zen4", {"fp32": 32, "bf16": 64, "int8": 128}),  # AMD: 512-bit ops on 256-bit pipes
    ("amx", {"fp32": 64, "bf16": 1024, "int8": 2048}),  # the tile unit
])
def test_the_cpu_peak_counts_the_instructions_of_each_profile(profile, per_cycle):
    with faked(profile=profile):
        for precision, ops in per_cycle.items():
            peak = cpu_peak(precision, cores=2, clock_mhz=2000.0)
            assert peak["ops_per_cycle"] == ops and peak["peak"] == pytest.approx(2 * 2.0 * ops), (precision, peak)
            assert peak["unit"] == ("GOP/s" if precision == "int8" else "GFLOP/s")
        unclocked = cpu_peak("fp32", cores=2, clock_mhz=None)
        assert unclocked["peak"] is None and peak_line(unclocked).startswith("fp32: no clock reported, no peak (")


def _fake_chain(runtime, precision, rates_by_m):
    return {"runtime": runtime, "precision": precision,
            "by_m": [{"m": m, "best": rate} for m, rate in rates_by_m.items()]}


@pytest.mark.parametrize("profile", ["avx2", "zen4", "amx"])
def test_no_row_reads_above_its_roofline(profile):
    """The denominator is the best of the precision's chains and rows, so a row beating every chain sets it."""
    from types import SimpleNamespace

    with faked(profile=profile):
        roofline = Roofline(SimpleNamespace(), threads=2, rows=[], mean_tokens=25.0, batch_sizes=(1, 8), timing=TINY)
        roofline.rates = {"onnxruntime int8": _fake_chain("onnxruntime", "int8", {25: 300.0, 200: 500.0}),
                          "onnxruntime int8_static": _fake_chain("onnxruntime", "int8_static", {25: 350.0, 200: 450.0}),
                          "pytorch fp32": _fake_chain("pytorch", "fp32", {25: 40.0, 200: 80.0}),
                          "openvino bf16": {"runtime": "openvino", "precision": "bf16", "skipped": "no native bf16"}}
        rows = [{"row": "A", "precision": "fp32", "role": "baseline", "achieved_gflops": 60.0},  # beats its chain
                {"row": "D", "precision": "int8", "role": "project", "achieved_gflops": 200.0},
                {"row": "S", "precision": "int8", "role": "project", "achieved_gflops": 100.0},
                {"row": "E", "precision": "fp32", "role": "gpu", "on_gpu": True, "achieved_gflops": 9000.0}]
        lines = roofline.finish(1, rows)
        by = {r["row"]: r for r in rows}
        assert by["A"]["roofline_fraction"] == 1.0 and by["A"]["roofline_source"] == "row A"
        assert by["D"]["roofline_rate"] == 350.0 and by["D"]["roofline_source"] == "onnxruntime int8_static chain"
        assert by["S"]["roofline_fraction"] == pytest.approx(100 / 350)
        assert by["E"]["roofline_source"] == "row E" and by["A"]["roofline_rate"] == 60.0  # the GPU's apart from the CPU's
        assert all(r["roofline_fraction"] <= 1 for r in rows if r.get("roofline_fraction") is not None)
        assert any(line.startswith("bs1 (M=25) int8 roofline: 350.0 GOP/s") for line in lines)
        roofline.finish(8, rows)  # M=200: the chains are faster than every row now
        assert by["A"]["roofline_rate"] == 80.0 and by["D"]["roofline_rate"] == 500.0
        assert roofline.record()["roofline_best"]["8"]["int8"] == {"rate": 500.0, "source": "onnxruntime int8 chain"}


def test_a_rate_above_the_cpu_peak_is_called_out():
    from types import SimpleNamespace

    roofline = Roofline(SimpleNamespace(), threads=1, rows=[], mean_tokens=10.0, batch_sizes=(1,), timing=TINY)
    roofline.peaks = {"fp32": {"peak": 50.0}}
    (line,) = roofline.finish(1, [{"row": "C", "precision": "fp32", "role": "project", "achieved_gflops": 60.0}])
    assert "120% of the CPU peak" in line and "above it" in line and "PEAK_FMA_PIPES" in line


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_the_compiled_pytorch_chains_compute_the_chain(tmp_path, precision):
    """The chains the compiled PyTorch rows are held against: compiled (and quantized by torchao for int8)."""
    from tinybert.runtimes.needs import unmet

    if precision == "int8" and unmet("torchao"):
        pytest.skip(unmet("torchao"))
    run = build_runner("pytorch-compiled", precision, 1, 1, str(tmp_path))
    for m in (5, 33):  # two sizes, one compiled graph (dynamic shapes)
        x = inputs(m)
        out = run(x).numpy()
        assert out.shape == (m, 312)
        assert np.abs(out - _reference(x)).max() < (1e-3 if precision == "fp32" else 0.1) * np.abs(_reference(x)).max()


def test_the_clock_comes_from_cpufreq_then_cpuinfo_then_the_model_name(tmp_path, monkeypatch):
    """Each source of the peak's clock, faked: a VM without cpufreq, one without 'cpu MHz', one with neither."""
    from tinybert import machine

    (tmp_path / "max_freq").write_text("3700000\n")
    cpuinfo = {"cpu MHz": ["2596.1", "2800.5"], "model name": ["Some CPU @ 2.30GHz"]}
    monkeypatch.setattr(machine, "cpuinfo_values", lambda key: cpuinfo.get(key, []))
    monkeypatch.setattr(machine, "CPUFREQ_MAX", str(tmp_path / "max_freq"))
    assert machine.cpu_clock_mhz() == (3700.0, "cpufreq cpuinfo_max_freq")
    monkeypatch.setattr(machine, "CPUFREQ_MAX", str(tmp_path / "none"))
    assert machine.cpu_clock_mhz() == (2800.5, "/proc/cpuinfo cpu MHz")  # the highest core's
    del cpuinfo["cpu MHz"]
    assert machine.cpu_clock_mhz() == (2300.0, "the model name's clock")
    cpuinfo["model name"] = ["Some CPU"]
    assert machine.cpu_clock_mhz() == (None, "no clock reported")


class _Opened(Exception):
    """Raised by the stand-ins for ONNX Runtime's session and OpenVINO's compile: what they got is kept."""


def _session_options(monkeypatch, open_session) -> tuple:
    """The options `open_session()` hands ONNX Runtime, as values."""
    import onnxruntime as ort

    seen = []

    def session(model, options, providers):
        seen.append(options)
        raise _Opened("not loaded: a stand-in")

    monkeypatch.setattr(ort, "InferenceSession", session)
    with pytest.raises((_Opened, ModelFileError)):  # OrtRuntime reports a failed load as ModelFileError
        open_session()
    return tuple(getattr(seen[0], name) for name in ("intra_op_num_threads", "inter_op_num_threads",
                                                     "graph_optimization_level", "execution_mode"))


@pytest.mark.parametrize("threads, requests", [(1, 1), (2, 2), (4, 2), (3, 4)])
def test_the_onnxruntime_chains_get_the_runtimes_session_options(tmp_path, monkeypatch, threads, requests):
    from tinybert.bench.square_rates import _ort_matmul
    from tinybert.runtimes.onnxruntime import OrtRuntime

    model = tmp_path / "model.onnx"
    model.write_bytes(b"")
    opened = _session_options(monkeypatch, lambda: OrtRuntime(str(model), threads=threads, requests=requests))
    assert opened[:2] == (max(1, threads // requests), 1)
    assert _session_options(monkeypatch, lambda: build_runner("onnxruntime", "fp32", threads, requests,
                                                              str(tmp_path))) == opened
    one_call = _session_options(monkeypatch, lambda: OrtRuntime(str(model), threads=threads, requests=1))
    x = np.zeros((8, 8), dtype=np.float32)
    assert _session_options(monkeypatch, lambda: _ort_matmul(8, threads, x, x)) == one_call


@pytest.mark.parametrize("precision, ov_precision", [("fp32", "f32"), ("bf16", "bf16")])
@pytest.mark.parametrize("threads, requests", [(2, 1), (4, 2)])
def test_the_openvino_chain_gets_the_runtimes_compile_config(tmp_path, monkeypatch, precision, ov_precision, threads,
                                                             requests):
    ov = pytest.importorskip("openvino")
    from tinybert.runtimes.openvino import OpenVinoRuntime

    seen = []

    class Core:
        def compile_model(self, model, device, config):
            seen.append((device, config))
            raise _Opened("not compiled: a stand-in")

    monkeypatch.setattr(ov, "Core", Core)
    model = tmp_path / "model.onnx"
    model.write_bytes(b"")
    with faked(profile="amx"):  # bf16 opens only where the CPU computes it natively
        with pytest.raises(_Opened):
            OpenVinoRuntime(str(model), threads=threads, precision=ov_precision, requests=requests)
        with pytest.raises(_Opened):
            build_runner("openvino", precision, threads, requests, str(tmp_path))
    assert seen[0] == seen[1] and seen[0][1]["INFERENCE_PRECISION_HINT"] == ov_precision
    assert seen[0][1].get("NUM_STREAMS", 1) == requests
