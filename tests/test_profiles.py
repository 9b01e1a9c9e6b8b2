"""Every CPU class's code paths run on any machine: the whole benchmark (a small sample, one pass,
every row the registry builds for that class) under each faked capability profile, and the steps
that branch on a capability (the bf16 path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import QUICK_PERF, SHARED, input_arg, make_small_tsv, run_cli, run_script

from tinybert import capabilities
from tinybert.bench.benchmark import BenchmarkRun, run_benchmark
from tinybert.registry import PATHS
from tinybert.bench.roofline import Timing

CPU_ROWS = ["A", "B", "C", "C1", "C16", "Cw", "D", "Dw", "S", "V8", "OV", "OVt", "OV8", "OV8t", "PTc", "PTq8"]
BF16_ROWS = ["Bf", "OVb", "OVbt", "PTb", "PTcb", "PTcbm"]
# What each profile must build (the spec, written out), and why the other rows are skipped.
EXPECTED = {
    ("avx2", ()): (CPU_ROWS, {"Bf": "no native bf16", "OVb": "no native bf16", "PTcb": "no native bf16",
                              "PTcbm": "no native bf16", "E": "CUDAExecutionProvider"}),
    ("avx512_vnni", ()): (CPU_ROWS, {"OVbt": "no native bf16", "F": "TensorrtExecutionProvider"}),
    ("amx", ()): (CPU_ROWS + BF16_ROWS, {"E": "CUDAExecutionProvider"}),
    ("amx", ("openvino", "nncf", "torchao")): (
        ["A", "B", "C", "C1", "C16", "Cw", "D", "Dw", "S", "PTc", "PTb", "PTcb", "PTcbm"],
        {"Bf": "openvino is not installed", "V8": "openvino is not installed", "OV8t": "openvino is not installed",
         "PTq8": "torchao is not installed"}),
}
def _expected(profile, without) -> tuple[list, dict]:
    """EXPECTED, less PTq8 where this real CPU's int8 kernels fail torchao's check (no profile fakes a kernel)."""
    expected, skipped = EXPECTED[profile, without]
    int8_here = None if "torchao" in without or not capabilities.installed("torchao") else \
        capabilities.torchao_int8_fails()
    if int8_here:
        return [row for row in expected if row != "PTq8"], {**skipped, "PTq8": "torchao is installed but"}
    return expected, skipped


QUICK = Timing(min_time_s=0.0, samples=1, budget_s=0.0)


@pytest.fixture(scope="module")
def bench(inputs, tmp_path_factory):
    """A small labelled sample and a training TSV to calibrate on, and one work folder the runs share
    (each model is exported once)."""
    root = tmp_path_factory.mktemp("profiles")
    lines = inputs.tsv.read_text(encoding="utf-8").splitlines()
    (root / "dev.tsv").write_text("\n".join(lines[:49]) + "\n", encoding="utf-8")
    train = SHARED / "data" / "SST-2" / "train.tsv"
    if inputs.real and train.is_file():
        (root / "train.tsv").write_text("\n".join(train.read_text(encoding="utf-8").splitlines()[:200]) + "\n",
                                        encoding="utf-8")
    else:
        make_small_tsv(root / "train.tsv", 60, seed=4)
    return root, inputs.checkpoint


def _run(bench, tmp_path, profile, without) -> dict:
    root, checkpoint = bench
    # The export gate of the static int8 model is tested in test_calibration.py; here every row is built.
    run = BenchmarkRun(str(checkpoint), str(root / "dev.tsv"), str(tmp_path / "out"), (4,), repeats=1, plot=True,
                       calibration_file=str(root / "train.tsv"), calibration_samples=40, roofline_timing=QUICK,
                       work_dir=str(root / "work"), export_min_agreement=0.0)
    with capabilities.faked(profile, without):
        return run_benchmark(run)


@pytest.mark.slow
@pytest.mark.parametrize("profile, without", list(EXPECTED), ids=lambda v: "-".join(v) if isinstance(v, tuple) else v)
def test_the_whole_benchmark_runs_under_each_cpu_profile(bench, tmp_path, profile, without):
    report = _run(bench, tmp_path, profile, without)
    expected, skipped = _expected(profile, without)
    rows = [r["row"] for r in report["results"]]
    assert rows == [p.row for p in PATHS if p.row in expected]  # every row it would build, in registry order
    for row, reason in skipped.items():
        assert any(note.startswith(f"row {row} ") and reason in note for note in report["notes"]), (row, reason)
    by_row = {r["row"]: r for r in report["results"]}
    for path in PATHS:
        if path.row in by_row:
            r = by_row[path.row]
            assert r["gate"] == path.gate and r["runtime"] == path.runtime and r["sentences_per_s"] > 0
            assert r["roofline_rate"] > 0 and 0 < r["roofline_fraction"] <= 1  # the best of its precision
    checks = {c["check"] for c in report["checks"]}
    for row in by_row:
        gate = by_row[row]["gate"]
        assert gate is None or any(c.startswith(f"{row} ") for c in checks), row
    peers = [r for r in report["results"] if r["role"] == "peer"]
    assert bool(peers) == any(c.startswith("fastest gated project row") for c in checks)
    header = "\n".join(report["roofline_lines"])
    assert capabilities.PROFILES[profile] and (profile != "amx" or "AMX-INT8" in header)
    (folder,) = (tmp_path / "out").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["benchmark.json", "benchmark.md", "benchmark.png"]
    assert json.loads((folder / "benchmark.json").read_text())["results"][0]["row"] == "A"
    assert "CPU class " + {"avx2": "AVX2", "avx512_vnni": "AVX-512+VNNI", "amx": "AMX"}[profile] in \
        (folder / "benchmark.md").read_text()


@pytest.mark.slow
def test_the_bf16_path_runs_where_the_cpu_has_native_bf16(tmp_path, small_inputs, small_features):
    """ORT_MODEL=bf16 through the steps under a faked AMX CPU (OpenVINO runs it in fp32 on a CPU without
    native bf16, which is what lets this branch execute here); refused with exit 3 on AVX2."""
    from tinybert.export import export_fast_models

    export_fast_models(str(small_inputs.checkpoint), str(tmp_path), features_dir=str(small_features))
    env = {"BIN_DIR": str(small_features), "MODEL_DIR": str(tmp_path), "ORT_MODEL": "bf16",
           "CKPT_DIR": str(small_inputs.checkpoint), "OUTPUT_DIRNAME": "bf16_amx", "LOOP": "2"}
    amx = {**env, "TINYBERT_CPU_PROFILE": "amx"}
    infer = run_script("ais_inference.sh", 8, cwd=tmp_path, env=amx)
    assert infer.returncode == 0, infer.stdout + infer.stderr
    assert "runtime: openvino-bf16" in infer.stdout
    scored = run_script("postprocess_data.sh", "bf16_amx", cwd=tmp_path, env=amx)
    assert scored.returncode == 0 and "accuracy:" in scored.stdout, scored.stderr
    assert run_script("perf.sh", 8, cwd=tmp_path, env={**amx, **QUICK_PERF}).returncode == 0
    predicted = run_script("predict.sh", "a fine film", cwd=tmp_path,
                           env={**amx, "ONNX_MODEL": str(tmp_path / "TinyBERT_fast.onnx")})
    assert predicted.returncode == 0 and predicted.stdout.count("\n") == 2, predicted.stderr
    refused = run_script("ais_inference.sh", 8, cwd=tmp_path, env={**env, "TINYBERT_CPU_PROFILE": "avx2",
                                                                    "OUTPUT_DIRNAME": "bf16_avx2"})
    assert refused.returncode == 3 and "native bf16" in refused.stderr
    assert not Path(tmp_path / "result" / "bf16_avx2").exists()


def test_a_faked_profile_reaches_the_steps(tmp_path):
    proc = run_cli("roofline", "--batch_sizes", "1", "--pairs", "onnxruntime/int8", "--min_time", "0", "--samples", 1,
                   "--budget", "0", cwd=tmp_path, env={"TINYBERT_CPU_PROFILE": "avx512_vnni"})
    assert proc.returncode == 0, proc.stderr
    assert "FAKED CPU profile 'avx512_vnni'" in proc.stdout and "VNNI" in proc.stdout
