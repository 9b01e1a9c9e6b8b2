"""Every CPU class's code paths run on any machine: the rows the benchmark builds under each faked capability profile
(torchao's int8 kernel faked both ways) with the reason for each row it skips, the whole benchmark once, in process,
under the class that builds the most rows, and the steps that branch on a capability (the bf16 path)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from conftest import QUICK_PERF, copy_models, make_small_tsv, run_cli, run_script

from tinybert import capabilities
from tinybert.bench.benchmark import BenchmarkRun, run_benchmark, select_rows
from tinybert.bench.roofline import Timing, precision_class
from tinybert.bench.rows import rows as all_rows
from tinybert.runtimes import torch_peer

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
# torchao's int8 kernel check, both outcomes on every machine (the real one depends on the CPU's int8 kernels).
TORCHAO_FAILS = "torchao is installed but its int8 linear is off here (faked)"
KERNELS = {"works": {"torchao_int8": None}, "fails": {"torchao_int8": TORCHAO_FAILS}}
NO_GPU = ("torch_cuda",)  # the GPU rows have their own tests (test_gpu_bench.py); here no machine's GPU shows


def _expected(profile, without, kernels) -> tuple[list, dict]:
    """EXPECTED, less PTq8 where torchao is there but its (faked) int8 kernel check fails."""
    expected, skipped = EXPECTED[profile, without]
    if "torchao" not in without and kernels == "fails":
        return [row for row in expected if row != "PTq8"], {**skipped, "PTq8": TORCHAO_FAILS}
    return expected, skipped


WHOLE_COUNT = 38  # sentences of the whole run: its static bs-4 model's last batch is filled
QUICK = Timing(min_time_s=0.0, samples=1, budget_s=0.0)


@pytest.mark.parametrize("kernels", list(KERNELS))
@pytest.mark.parametrize("profile, without", list(EXPECTED), ids=lambda v: "-".join(v) if isinstance(v, tuple) else v)
def test_each_cpu_profile_selects_its_rows_and_says_why_it_skips_the_others(small_inputs, profile, without, kernels):
    run = BenchmarkRun(str(small_inputs.checkpoint), str(small_inputs.tsv), "unused", (4,),
                       calibration_file=str(small_inputs.tsv))
    with capabilities.faked(profile, without + NO_GPU, kernels=KERNELS[kernels]):
        rows, notes = select_rows(run)
    expected, skipped = _expected(profile, without, kernels)
    assert [p.row for p in rows] == [p.row for p in all_rows() if p.row in expected]  # every row it would build, in order
    for row, reason in skipped.items():
        assert any(note.startswith(f"row {row} ") and reason in note for note in notes), (row, reason, notes)
    assert not {p.row for p in rows} & {n.split()[1] for n in notes}  # a row is either built or noted


class Uncompiled:
    """torch_peer.FrozenCompiled's stand-in in the whole run: the compiled rows and roofline chains run their
    function as it is, the compile mode each asked for recorded. Inductor compiles each for minutes on 2 CPUs;
    what compiling gives is tested on its own: equal to eager and compiled only in the warm-up, per precision and
    mode (test_torch_peer_runtime.py), and the compiled chains of the roofline (test_roofline.py)."""

    asked: list = []

    def __init__(self, forward, mode=None, config=None):
        Uncompiled.asked.append(mode)
        self.forward = forward

    def __call__(self, *tensors):
        return self.forward(*tensors)


@pytest.fixture(scope="module")
def whole_run(small_inputs, tmp_path_factory):
    """The whole benchmark once, in this process, under the CPU class that builds the most rows (AMX: every CPU row,
    bf16 ones included) with torchao's int8 kernel faked to work, so every CPU row runs; a quick roofline, and every
    model exported (the static int8 export's gate is tested in test_calibration.py). No sentence is truncated, so no
    batch has a single row. torch.compile's rows and chains run uncompiled (Uncompiled)."""
    root = tmp_path_factory.mktemp("whole_benchmark")
    make_small_tsv(root / "dev.tsv", WHOLE_COUNT, long_at=None)
    make_small_tsv(root / "train.tsv", 60, seed=4)
    run = BenchmarkRun(str(small_inputs.checkpoint), str(root / "dev.tsv"), str(root / "out"), (4,), repeats=1,
                       calibration_file=str(root / "train.tsv"), calibration_samples=40, roofline_timing=QUICK,
                       export_min_agreement=0.0)
    Uncompiled.asked.clear()
    with capabilities.faked("amx", NO_GPU, kernels=KERNELS["works"]), contextlib.chdir(root), \
            contextlib.redirect_stdout(io.StringIO()) as out, pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch_peer, "FrozenCompiled", Uncompiled)
        report = run_benchmark(run)
    return report, out.getvalue(), root


@pytest.mark.slow
def test_the_whole_benchmark_runs_every_cpu_row(whole_run):
    report, stdout, root = whole_run
    (folder,) = [p for p in (root / "out").iterdir() if p.name.startswith("benchmark-")]
    assert sorted(p.name for p in folder.iterdir()) == ["benchmark.json", "benchmark.md", "benchmark.png"]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # scratch models removed
    assert json.loads((folder / "benchmark.json").read_text()) == json.loads(json.dumps(report))
    by_row = {r["row"]: r for r in report["results"]}
    expected, skipped = _expected("amx", (), "works")
    assert list(by_row) == [p.row for p in all_rows() if p.row in expected]
    for row, reason in skipped.items():
        assert any(note.startswith(f"row {row} ") and reason in note for note in report["notes"]), (row, reason)
    for path in all_rows():
        if path.row in by_row:
            r = by_row[path.row]
            assert r["gate"] == path.gate and r["runtime"] == path.runtime and r["sentences_per_s"] > 0
            assert r["roofline_rate"] > 0 and 0 < r["roofline_fraction"] <= 1  # the best of its precision
            assert r["gate"] is None or any(c["check"].startswith(f"{path.row} ") for c in report["checks"]), path.row
    assert report["num_samples"] == WHOLE_COUNT and by_row["A"]["max_abs_diff_to_A"] == 0.0
    for key in "BC":
        assert by_row[key]["agreement_with_A"] == 1.0 and by_row[key]["max_abs_diff_to_A"] <= 1e-4
    assert by_row["C"]["tokens"] < by_row["A"]["tokens"] == WHOLE_COUNT * 64  # bucketing processes fewer positions
    assert by_row["B"]["tokens"] == 40 * 64  # the static model's last batch is filled
    assert by_row["C"]["requests_in_flight"] >= 1 and by_row["C1"]["requests_in_flight"] == 1
    rates = report["model_shape_rates"]  # each row's own engine's chain, and the best of its precision
    assert by_row["C"]["own_recipe"] in rates and by_row["D"]["own_recipe"] in rates
    assert by_row["C"]["own_recipe"] != by_row["D"]["own_recipe"] and by_row["D"]["precision"] == "int8"
    best = report["roofline_best"]["4"]
    assert best["int8"]["rate"] >= max(r["achieved_gflops"] for r in by_row.values() if r["precision"] == "int8")
    assert all(r["roofline_rate"] == best[precision_class(r["precision"])]["rate"] for r in by_row.values())
    checks = {c["check"] for c in report["checks"]}
    assert any(c.startswith("D agreement with A") for c in checks)
    assert any(c.startswith("fastest gated project row") for c in checks)
    assert any(c.startswith("C (project fp32) / fastest fp32 peer") for c in checks)
    assert "CPU peak (cores x clock x ops per cycle" in stdout and "roofline:" in stdout and "AMX-INT8" in stdout
    assert "row E (ONNX Runtime CUDA fp32" in stdout and "| 4 | C |" in (folder / "benchmark.md").read_text()
    assert "CPU class AMX" in (folder / "benchmark.md").read_text()
    assert (folder / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(Uncompiled.asked, key=str) == [None] * 6 + ["max-autotune"]  # PTc, PTcb, PTcbm, PTq8, 3 chains


@pytest.mark.slow
def test_the_bf16_path_runs_where_the_cpu_has_native_bf16(tmp_path, small_inputs, small_features, small_fast_models):
    """ORT_MODEL=bf16 through the steps under a faked AMX CPU (OpenVINO runs it in fp32 on a CPU without
    native bf16, which is what lets this branch execute here); refused with exit 3 on AVX2."""
    copy_models(small_fast_models, tmp_path)
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


@pytest.mark.slow
def test_a_faked_profile_reaches_the_steps(tmp_path):
    proc = run_cli("roofline", "--batch_sizes", "1", "--pairs", "onnxruntime/int8", "--min_time", "0", "--samples", 1,
                   "--budget", "0", cwd=tmp_path, env={"TINYBERT_CPU_PROFILE": "avx512_vnni"})
    assert proc.returncode == 0, proc.stderr
    assert "FAKED CPU profile 'avx512_vnni'" in proc.stdout and "VNNI" in proc.stdout
