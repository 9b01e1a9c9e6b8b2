"""The roofline at the model's own shapes (tinybert/roofline.py, shape_graphs.py): the chain's FLOPs,
the int8 recipes really quantizing it, rates measured in each thread layout (positive, not timed),
rows that cannot run here skipped with the reason, and the `roofline` step, faked CPU included."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

from tinybert.capabilities import faked
from tinybert.errors import UsageError
from tinybert.bench.roofline import Timing, model_shape_lines, model_shape_rate, rate_at, rates_for
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

    compiled = ov.Core().compile_model(str(tmp_path / "chain_int8.xml"), "CPU")
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
