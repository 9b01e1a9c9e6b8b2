"""The benchmark on a GPU with the GPU faked: PyTorch's GPU peers and baseline beside the project's GPU paths, the GPU
roofline (the GEMM chain on the device, the device's peak), the GPU checks, and the speed record GPU_MODEL=auto orders
its candidates by (the compiled path chosen by measured figures only). Figures here are the CPU's, not a GPU's."""

from __future__ import annotations

import json
import os

import pytest

from conftest import run_cli
from tinybert import registry
from tinybert.bench.checks import evaluate_targets
from tinybert.bench.rows import row
from tinybert.bench.roofline import GPU_KEY, Roofline, Timing, gpu_peak, gpu_peak_line, roofline_key, row_recipe
from tinybert.capabilities import FAKE_GPU_ENV, FAKED_GPU_SPEC, Gpu, faked
from tinybert.results import gate_record, gpu_speed
from tinybert.runtimes.route import gpu_auto_candidates, resolve_gpu_model

H200 = "NVIDIA H200"
FAKED = f"{H200} (faked: computed on the CPU)"
QUICK = Timing(min_time_s=0.0, samples=1, budget_s=0.0)


# ---------------------------------------------------------------- the rows

def test_the_gpu_peers_are_pytorch_as_its_users_run_it():
    from tinybert.bench.rows import rows as all_rows

    rows = {p.row: p for p in all_rows()}
    assert rows["GA"].role == "gpu-baseline" and not rows["GA"].cls_only and rows["GA"].precision == "fp32"
    assert {rows[r].role for r in ("GAh", "GPc", "GPcm")} == {"gpu-peer"}
    assert all(rows[r].gate is None and rows[r].on_gpu for r in ("GA", "GAh", "GPc", "GPcm"))
    assert dict(rows["GA"].options)["graphs"] is False and dict(rows["GAh"].options)["graphs"] is False
    assert [dict(rows[r].options)["compile_mode"] for r in ("GPc", "GPcm")] == ["default", "max-autotune"]
    assert all(dict(rows[r].options)["dynamic"] is None for r in ("GPc", "GPcm"))  # torch's default, not ours
    assert dict(rows["Ghc"].options)["compile_mode"] == "max-autotune" and "dynamic" not in dict(rows["Ghc"].options)
    assert row_recipe(rows["GAh"]) == ("pytorch-cuda", "fp16") and row_recipe(rows["E"]) is None
    assert "gpu-eager-fp32" not in registry.gpu_models()  # a peer is never a GPU_MODEL value


def test_the_peer_options_reach_the_runtime(small_inputs, small_features):
    import numpy as np

    from tinybert.data.features import load_features
    from tinybert.runtimes.route import open_path
    from tinybert.runtimes.runner import model_logits

    arrays = load_features(str(small_features))[0].batch(slice(None))
    with faked(gpu=H200):
        eager = open_path(row("GA"), ckpt_dir=str(small_inputs.checkpoint))
        compiled = open_path(row("GPc"), ckpt_dir=str(small_inputs.checkpoint))
        graphs = open_path(row("G"), ckpt_dir=str(small_inputs.checkpoint))
        whole, cls_only = model_logits(eager, arrays, 8), model_logits(graphs, arrays, 8)
    assert (eager.graphs, eager.precision, eager.compile_mode) == (False, "fp32", None)
    assert np.abs(whole - cls_only).max() <= 1e-4  # the whole last layer (GA) gives the [CLS]-only logits
    assert (compiled.graphs, compiled.precision, compiled.compile_mode, compiled.dynamic) == \
        (False, "fp16", "default", None)
    assert compiled.compile_cache is None  # a faked device compiles nothing, so no cache is touched


def test_the_compile_cache_goes_where_the_setting_says(tmp_path, monkeypatch):
    from tinybert.machine import use_compile_cache

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    folder = use_compile_cache(str(tmp_path / "cache"))
    assert folder == str(tmp_path / "cache") and os.path.isdir(folder) and os.environ["TORCHINDUCTOR_CACHE_DIR"] == folder
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert use_compile_cache(str(tmp_path / "cache")) == str(tmp_path / "mine")  # the user's own wins


# ---------------------------------------------------------------- the GPU roofline

def test_the_gpu_peak_is_sms_times_clock_times_its_rate():
    h200 = Gpu(0, H200, (9, 0), multiprocessors=132, clock_mhz=1980.0)
    assert gpu_peak("fp16", h200)["peak"] == pytest.approx(132 * 1980 * 4096 / 1000)
    assert gpu_peak("fp32", h200)["peak"] < gpu_peak("tf32", h200)["peak"] < gpu_peak("bf16", h200)["peak"]
    t4 = Gpu(0, "Tesla T4", (7, 5), multiprocessors=40, clock_mhz=1590.0)
    assert gpu_peak("bf16", t4)["peak"] is None and "per-SM rate not known" in gpu_peak_line(gpu_peak("bf16", t4))
    unclocked = Gpu(0, H200, (9, 0), multiprocessors=132)
    assert gpu_peak("fp16", unclocked)["peak"] is None and "clock not reported" in gpu_peak_line(gpu_peak("fp16", unclocked))
    assert "108 SMs x 1410 MHz x 2048" in gpu_peak_line(gpu_peak("fp16", Gpu(0, FAKED, faked=True, **FAKED_GPU_SPEC)))
    assert roofline_key("fp16", True) == GPU_KEY + "fp16" and roofline_key("int8_static", False) == "int8"


def test_the_gpu_roofline_holds_gpu_rows_apart_and_never_below_a_row(small_inputs):
    from tinybert.model.modeling import load_bert_config

    paths = [row(r) for r in ("A", "G", "Gh", "GAh")]
    with faked(gpu=H200):
        roofline = Roofline(load_bert_config(str(small_inputs.checkpoint)), 1, paths, mean_tokens=10.0, batch_sizes=(2,),
                            timing=QUICK, gpu_batch_sizes=(4,))
    assert set(roofline.rates) == {"pytorch fp32", "pytorch-cuda fp32", "pytorch-cuda fp16"}
    assert [x["m"] for x in roofline.rates["pytorch fp32"]["by_m"]] == [20]  # the CPU chain: the CPU's sizes only
    assert [x["m"] for x in roofline.rates["pytorch-cuda fp16"]["by_m"]] == [20, 40]
    assert set(roofline.gpu_peaks) == {GPU_KEY + "fp32", GPU_KEY + "fp16"} and "GPU peak" in roofline.header()[-1]
    chain = roofline.rates["pytorch-cuda fp16"]["by_m"][1]["best"]
    rows = [{"row": "Gh", "precision": "fp16", "on_gpu": True, "achieved_gflops": 10 * chain},
            {"row": "GAh", "precision": "fp16", "on_gpu": True, "achieved_gflops": chain / 2},
            {"row": "G", "precision": "fp32", "on_gpu": True, "achieved_gflops": 1e-6}]
    lines = roofline.finish(4, rows)
    assert rows[0]["roofline_fraction"] == 1.0 and rows[1]["roofline_fraction"] == pytest.approx(0.05)
    assert rows[0]["roofline_source"] == "row Gh" and rows[2]["roofline_source"] == "pytorch-cuda fp32 chain"
    assert any(line.startswith("bs4 (M=40) GPU fp16 roofline") and "of the GPU peak" in line for line in lines)


def test_the_gpu_roofline_runs_on_device_not_on_the_first_gpu(small_inputs, monkeypatch):
    """DEVICE 1 of two faked GPUs: the chain is built on it, and the rates and peak name it (not device 0)."""
    from tinybert.model.modeling import load_bert_config
    from tinybert.runtimes import cuda

    built = []
    chain = cuda.matmul_chain
    monkeypatch.setattr(cuda, "matmul_chain", lambda weights, device=0, **kw: built.append(device)
                        or chain(weights, device=device, **kw))
    with faked(gpu="NVIDIA H200, Tesla T4"):
        roofline = Roofline(load_bert_config(str(small_inputs.checkpoint)), 1, [row("A"), row("Gh")],
                            mean_tokens=10.0, batch_sizes=(2,), timing=QUICK, device=1)
    assert built == [1]
    assert roofline.rates["pytorch-cuda fp16"]["features"].startswith("Tesla T4 (faked")
    assert roofline.gpu_peaks[GPU_KEY + "fp16"]["device"].startswith("Tesla T4 (faked")


# ---------------------------------------------------------------- the GPU checks

def _row(row, bs, speed, role, gate=None, on_gpu=True, **more):
    return {"row": row, "batch_size": bs, "sentences_per_s": speed, "role": role, "gate": gate, "on_gpu": on_gpu,
            "precision": "fp32", "max_abs_diff_to_A": 0.0, "agreement_with_A": 1.0, "accuracy": 80.0, **more}


def test_the_gpu_targets_compare_the_fastest_gated_gpu_path_with_pytorch_on_the_gpu():
    results = [_row("A", 8, 10.0, "baseline", on_gpu=False), _row("G", 8, 600.0, "gpu-project", "exact"),
               _row("Gh", 8, 900.0, "gpu-project", "reduced", accuracy=70.0),  # fails its gate: never the fastest
               _row("GA", 8, 100.0, "gpu-baseline"), _row("GPcm", 8, 650.0, "gpu-peer"),
               _row("G", 128, 5000.0, "gpu-project", "exact"), _row("GA", 128, 4000.0, "gpu-baseline"),
               _row("GPcm", 128, 4500.0, "gpu-peer")]
    checks = {c["check"]: c for c in evaluate_targets(results)}
    peer8 = checks["fastest gated GPU path (G) / fastest PyTorch GPU peer (GPcm) at bs8"]
    assert peer8["value"] == pytest.approx(600 / 650) and not peer8["met"]
    eager8 = checks["fastest gated GPU path (G) / PyTorch eager fp32 on the GPU (GA) at bs8"]
    assert eager8["value"] == pytest.approx(6.0) and eager8["met"]
    assert not checks["Gh accuracy drop vs G at bs8 (<= 0.3 pt)"]["met"]
    assert checks["fastest gated GPU path (G) / fastest PyTorch GPU peer (GPcm) at bs128"]["met"]
    assert not any("eager fp32 on the GPU" in c and "bs128" in c for c in checks)  # bs 1 to 64 only


# ---------------------------------------------------------------- the speed record and GPU_MODEL=auto

def _pass_gates(model_dir, weights, names):
    for name in names:
        gate_record.write(name, model_dir, model_file=weights, runtime="pytorch-cuda", gate="reduced", rule="test",
                          passed=True, figures={"agreement": 1.0}, checked_on="now", judged_on=gate_record.DEV_SET,
                          device=FAKED)


def test_auto_orders_by_the_benchmarks_figures_and_takes_the_compiled_path_only_so(tmp_path, small_inputs):
    from tinybert.model.modeling import weights_path

    ckpt, folder = str(small_inputs.checkpoint), str(tmp_path)
    weights = weights_path(ckpt)
    _pass_gates(folder, weights, ["gpu-fp16", "gpu-bf16", "gpu-tf32", "gpu-fp16-compiled"])
    with faked(gpu=H200):
        assert resolve_gpu_model("auto", folder, ckpt).path == "gpu-fp16"  # no record: the registry's order
        assert "gpu-fp16-compiled" not in gpu_auto_candidates(folder, weights, FAKED)[0]
        gpu_speed.write(folder, device=FAKED, weights_file=weights, gated={"gpu-fp16": True, "gpu-fp16-compiled": True,
                                                                          "gpu-bf16": False, "gpu-fp32": True},
                        speeds={"gpu-fp16": {1: 100.0, 64: 1000.0}, "gpu-fp16-compiled": {1: 90.0, 64: 1500.0},
                                "gpu-bf16": {1: 500.0, 64: 5000.0}, "gpu-fp32": {1: 80.0, 64: 400.0}})
        candidates, why = gpu_auto_candidates(folder, weights, FAKED)
        assert candidates == ["gpu-fp16-compiled", "gpu-fp16"] and "measured by the benchmark on " + FAKED in why
        chosen = resolve_gpu_model("auto", folder, ckpt)
        assert chosen.path == "gpu-fp16-compiled" and "measured by the benchmark" in chosen.reason
    with faked(gpu="Tesla T4"):  # another GPU's figures say nothing here
        assert "was measured on " + FAKED in gpu_auto_candidates(folder, weights, "Tesla T4 (faked)")[1]
    with open(gpu_speed.record_path(folder), encoding="utf-8") as handle:
        record = json.load(handle)
    record["weights_sha256"] = "0" * 64
    with open(gpu_speed.record_path(folder), "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    assert gpu_auto_candidates(folder, weights, FAKED) == (
        ["gpu-fp16", "gpu-bf16", "gpu-tf32"],
        f"registry.GPU_AUTO_ORDER ({gpu_speed.record_path(folder)} is stale (measured for other weights))")


@pytest.mark.slow
def test_the_benchmark_runs_the_gpu_rows_peers_and_large_batches(small_inputs, tmp_path):
    """G and Gh beside PyTorch on the GPU (GA, GPc), at the run's bs and a GPU-only one (data repeated), on a faked GPU:
    capture time kept out of the passes, gated like the CPU paths, held against the GPU roofline, the record written."""
    proc = run_cli("benchmark", "--model_dir", small_inputs.checkpoint, "--data_file", small_inputs.tsv, "--output",
                   tmp_path / "out", "--batch_sizes", "4", "--gpu_batch_sizes", "4 16", "--repeats", "1", "--rows",
                   "G,Gh,GA,GPc", "--record_dir", tmp_path / "models", cwd=tmp_path, env={FAKE_GPU_ENV: H200})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (folder,) = (tmp_path / "out").iterdir()
    report = json.loads((folder / "benchmark.json").read_text())
    rows = {(r["row"], r["batch_size"]): r for r in report["results"]}
    assert set(rows) == {("A", 4), *((key, bs) for key in ("G", "Gh", "GA", "GPc") for bs in (4, 16))}
    copies = -(-4 * 16 // small_inputs.count)  # GPU_BENCH_MIN_BATCHES batches of 16
    assert rows["G", 16]["sentences"] == copies * small_inputs.count and rows["G", 4]["sentences"] == small_inputs.count
    assert rows["G", 16]["accuracy"] == pytest.approx(rows["G", 4]["accuracy"])  # the same sentences, repeated
    for key in ("G", "Gh", "GA", "GPc"):
        for bs in (4, 16):
            r = rows[key, bs]
            assert r["on_gpu"] and 0 < r["roofline_fraction"] <= 1 and r["compile_s"] > 0
            assert r["roofline_source"].startswith(("pytorch-cuda", "row G"))
    assert rows["G", 16]["max_abs_diff_to_A"] <= 1e-4 and rows["Gh", 16]["agreement_with_A"] >= 0.9
    checks = {c["check"] for c in report["checks"]}
    assert "fastest gated GPU path (G) / PyTorch eager fp32 on the GPU (GA) at bs16" in checks or \
        "fastest gated GPU path (Gh) / PyTorch eager fp32 on the GPU (GA) at bs16" in checks
    assert any(c.startswith("fastest gated GPU path") and "(GPc) at bs4" in c for c in checks)
    assert set(report["gpu_peaks"]) == {"GPU fp32", "GPU fp16"}
    record = json.loads((tmp_path / "models" / "gpu_speed.json").read_text())
    assert record["device"] == FAKED and set(record["paths"]) == {"gpu-fp32", "gpu-fp16"}
    assert set(record["paths"]["gpu-fp16"]["sentences_per_s"]) == {"4", "16"}
    assert sorted(p.name for p in folder.iterdir()) == ["benchmark.json", "benchmark.md", "benchmark.png"]
    assert "| 16 | GPc |" in (folder / "benchmark.md").read_text()
