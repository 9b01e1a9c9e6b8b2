"""The GPU path with the GPU faked (capabilities.FAKE_GPU_ENV / faked(gpu=...)): BACKEND=auto's choice, GPU_MODEL's
route and gates, the CUDA runtime's shapes and numerics, every step's GPU branch. On a faked GPU the runtime computes
on the CPU; the calls that need a real device (CUDA graph capture and replay, pinned memory, streams, the TF32
switch) are not run there: `test_a_real_cuda_device` runs them where torch sees a GPU, and is skipped elsewhere."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import QUICK_PERF, REPO, assert_clean_error, input_arg, run_cli, run_script
from tinybert import capabilities, registry
from tinybert.capabilities import FAKE_GPU_ENV, Gpu, faked
from tinybert.errors import BackendUnavailableError, UsageError
from tinybert.runtimes import open_runtime

GPU_MODULE = sys.modules["tinybert.capabilities.gpu"]  # the package's `gpu` is its function
from tinybert.runtimes import route
from tinybert.runtimes.route import explain_backend, plan_settings, resolve_gpu_model
from tinybert.runtimes.runner import model_logits
from tinybert.settings import EXPORT_TOLERANCE, gate_record_path

H200 = "NVIDIA H200"
FAKED = f"{H200} (faked: computed on the CPU)"


def _features(path: Path):
    from tinybert.data.features import load_features

    return load_features(str(path))[0].batch(slice(None))


@pytest.fixture(scope="module")
def reference(small_inputs, small_features):
    """PyTorch eager's logits on the CPU: what every fp32 path must reproduce."""
    return model_logits(open_runtime("pytorch", str(small_inputs.checkpoint)), _features(small_features), 8)


# ---------------------------------------------------------------- capabilities and the backend choice

def test_a_faked_gpu_is_named_as_faked_and_hidden_by_without(monkeypatch):
    monkeypatch.delenv(FAKE_GPU_ENV, raising=False)
    with faked(gpu=H200):
        [gpu] = capabilities.gpus()
        assert gpu.faked and gpu.name == FAKED and gpu.bf16
        assert capabilities.current().unmet("torch_cuda") is None
        with faked(without=["torch_cuda"]):
            assert capabilities.gpus() == ()
            assert "torch_cuda treated as not installed" in capabilities.current().unmet("torch_cuda")
        with pytest.raises(UsageError, match="DEVICE 3: expected a CUDA device id below 1"):
            capabilities.gpu(3)
    monkeypatch.setenv(FAKE_GPU_ENV, "Tesla T4")
    assert capabilities.gpus()[0].name.startswith("Tesla T4 (faked")


def test_why_no_gpu_is_said(monkeypatch):
    monkeypatch.delenv(FAKE_GPU_ENV, raising=False)
    monkeypatch.setattr(GPU_MODULE, "_real_gpus", lambda: ())
    monkeypatch.setattr(GPU_MODULE, "nvidia_driver_present", lambda: False)
    assert "no NVIDIA driver here" in capabilities.gpu_unmet("torch_cuda")
    monkeypatch.setattr(GPU_MODULE, "nvidia_driver_present", lambda: True)
    import torch

    reason = capabilities.gpu_unmet("torch_cuda")
    assert ("is a CPU build" in reason) if torch.version.cuda is None else ("sees no CUDA device" in reason)
    with pytest.raises(BackendUnavailableError, match="expected a CUDA device torch can use, got none"):
        capabilities.gpu(0)
    monkeypatch.setattr(GPU_MODULE, "_real_gpus", lambda: (Gpu(0, "Tesla T4", (7, 5)),))
    assert capabilities.gpu_unmet("torch_cuda") is None
    assert "Tesla T4 (compute capability 7.5) has no bf16" == capabilities.gpu_unmet("cuda_bf16")


def test_auto_picks_the_gpu_where_one_is_and_says_why(tmp_path, small_inputs, monkeypatch):
    monkeypatch.delenv(FAKE_GPU_ENV, raising=False)
    request = route.Request(model_dir=str(tmp_path), ckpt_dir=str(small_inputs.checkpoint))
    with faked(without=["torch_cuda"]):
        name, why = explain_backend("auto", [1], request)
        assert name == "onnxruntime" and "gpu: torch_cuda treated as not installed" in why
        with pytest.raises(BackendUnavailableError, match="no CUDA device torch can use"):
            explain_backend("gpu", [1], request)
    with faked(gpu=H200):
        assert explain_backend("auto", [1], request)[0] == "gpu"
        missing = route.Request(model_dir=str(tmp_path), ckpt_dir=str(tmp_path / "none"))
        assert explain_backend("auto", [1], missing)[0] == "onnxruntime"  # no checkpoint for the GPU to run
        with pytest.raises(UsageError, match="expected BACKEND auto, gpu or onnxruntime for this step"):
            explain_backend("ais_bench", [], request, among=("gpu", "onnxruntime"))


def test_the_backend_step_prints_the_choice_and_why(tmp_path, small_inputs):
    proc = run_cli("backend", "--batch_size", "1", "--ckpt_dir", small_inputs.checkpoint, cwd=tmp_path,
                   env={FAKE_GPU_ENV: H200}, check=True)
    assert proc.stdout == "gpu\n" and "[INFO] BACKEND=auto -> gpu (ais_bench:" in proc.stderr


# ---------------------------------------------------------------- GPU_MODEL's route and gates

def test_gpu_model_routes_to_the_cuda_runtime_with_its_options(tmp_path, small_inputs):
    request = route.Request(model_dir=str(tmp_path), ckpt_dir=str(small_inputs.checkpoint), gpu_model="gpu-bf16")
    with faked(gpu=H200):
        plan = plan_settings("gpu", request, 8, device=0)
    assert plan.runtime == "pytorch-cuda" and plan.model == str(small_inputs.checkpoint)
    assert plan.options["precision"] == "bf16" and plan.options["device"] == 0 and "requests" not in plan.options
    assert plan.describe().startswith("runtime: pytorch-cuda on GPU 0") and "GPU_MODEL=gpu-bf16" in plan.describe()
    with pytest.raises(UsageError, match="expected GPU_MODEL gpu-fp32, gpu-tf32"):
        registry.gpu_path("fp16")
    assert registry.gpu_path("gpu-fp32").gate == "exact" and registry.gpu_path("gpu-fp16").gate == "reduced"
    assert all(p.on_gpu and p.whole_batches for p in registry.PATHS if p.role == "gpu-project")


def test_gates_are_checked_once_per_gpu_and_auto_trusts_them(tmp_path, small_inputs, small_features):
    from tinybert.export import ExportJob
    from tinybert.prepare.gates import gpu_candidates

    def ensure_gpu_gates(ckpt_dir, model_dir, features_dir):
        return gpu_candidates(ExportJob(ckpt_dir=ckpt_dir, out_dir=model_dir, features_dir=features_dir), None)

    ckpt = str(small_inputs.checkpoint)
    with faked(gpu=H200):
        before = resolve_gpu_model("auto", str(tmp_path), ckpt)
        assert before.path == "gpu-fp32" and "gpu-fp16: no gate record" in before.reason
        states = ensure_gpu_gates(ckpt, str(tmp_path), str(small_features))
        assert set(states) == {"gpu-fp16", "gpu-bf16", "gpu-tf32"} and set(states.values()) <= {"passed", "failed"}
        record = json.loads(Path(gate_record_path("gpu-fp16", str(tmp_path))).read_text())
        assert record["cpu_class"] == FAKED and record["model"] == "pytorch_model.bin" and record["gate"] == "reduced"
        assert record["judged_on"] == "dev set"  # the small features carry labels
        first = {name: os.path.getmtime(gate_record_path(name, str(tmp_path))) for name in states}
        assert ensure_gpu_gates(ckpt, str(tmp_path), str(small_features)) == states  # trusted: not checked again
        assert first == {name: os.path.getmtime(gate_record_path(name, str(tmp_path))) for name in states}
        chosen = resolve_gpu_model("auto", str(tmp_path), ckpt)
        passed = [name for name in registry.GPU_AUTO_ORDER if states.get(name) == "passed"]
        assert chosen.path == (passed[0] if passed else "gpu-fp32") and chosen.setting == "GPU_MODEL"
    with faked(gpu="Tesla T4"):  # another GPU: its records say nothing here
        other = resolve_gpu_model("auto", str(tmp_path), ckpt)
        assert other.path == "gpu-fp32" and "its gate was checked on " + FAKED in other.reason


# ---------------------------------------------------------------- the CUDA runtime

@pytest.mark.parametrize("precision", ["fp32", "tf32"])
def test_fp32_on_the_gpu_path_reproduces_pytorch(precision, small_inputs, small_features, reference):
    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint), precision=precision)
        logits = model_logits(runtime, _features(small_features), 8, "tight")
    assert logits.dtype == np.float32 and np.abs(logits - reference).max() <= EXPORT_TOLERANCE


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_runs_with_the_mask_in_its_dtype(precision, small_inputs, small_features, reference):
    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint), precision=precision)
        logits = model_logits(runtime, _features(small_features), 8, "tight")
    assert np.isfinite(logits).all() and 0 < np.abs(logits - reference).max() < 0.5
    assert str(runtime.model.classifier.weight.dtype) == {"fp16": "torch.float16", "bf16": "torch.bfloat16"}[precision]


def test_one_graph_per_padded_shape_captured_once_and_replayed(small_inputs, monkeypatch):
    from tinybert.runtimes import cuda

    captured = []
    real_capture = cuda.FakedCudaDevice.capture
    monkeypatch.setattr(cuda.FakedCudaDevice, "capture",
                        lambda self, forward, inputs: captured.append((forward.__self__.rows, forward.__self__.length))
                        or real_capture(self, forward, inputs))
    ids = np.full((3, 11), 7, dtype=np.int64)
    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint))
        assert runtime.padded_length(11) == 16 and runtime.padded_length(16) == 16 and runtime.padded_length(1) == 8
        first = runtime.run(ids, np.zeros_like(ids), np.ones_like(ids))
        short = runtime.run(ids[:, :9], np.zeros_like(ids[:, :9]), np.ones_like(ids[:, :9]))  # the same shape
        again = runtime.run(ids, np.zeros_like(ids), np.ones_like(ids))
        assert captured == [(3, 16)] and runtime.shapes == [(3, 16)]
        assert np.array_equal(first, again) and not np.array_equal(first, short)  # the padding is cleared
        seconds = runtime.warm_up([(2, 30), (3, 12), (2, 31)])
        assert seconds > 0 and runtime.shapes == [(2, 32), (3, 16)] and captured == [(3, 16), (2, 32)]
        assert runtime.warm_up([(2, 30)]) == 0.0  # nothing new to capture


def test_odd_row_counts_share_a_graph_and_drop_their_filler_rows(small_inputs, small_features, reference):
    arrays = _features(small_features)
    count = min(len(arrays[0]), 20)
    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint))
        assert [runtime.padded_rows(r) for r in (1, 16, 17, 100, 4095, 4097)] == [1, 16, 18, 104, 4096, 4608]
        whole = runtime.run(*(a[:count] for a in arrays))
        fewer = runtime.run(*(a[:count - 1] for a in arrays))
    assert whole.shape == (count, 2) and fewer.shape == (count - 1, 2)
    assert len(runtime.shapes) == 1 and runtime.shapes[0][0] == runtime.padded_rows(count) > count - 1
    assert np.abs(whole - reference[:count]).max() <= EXPORT_TOLERANCE
    assert np.abs(fewer - reference[:count - 1]).max() <= EXPORT_TOLERANCE


def test_a_padded_call_equals_the_unpadded_one(small_inputs, small_features, reference):
    """Lengths round up to GPU_LENGTH_STEP with mask 0: the logits stay PyTorch's."""
    arrays = _features(small_features)
    rows = np.arange(5)
    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint), length_step=64)
        out = runtime.run(*(a[rows, :13] for a in arrays))
    full = open_runtime("pytorch", str(small_inputs.checkpoint)).run(*(a[rows, :13] for a in arrays))
    assert np.abs(out - full).max() <= EXPORT_TOLERANCE and runtime.shapes == [(5, 64)]


def test_the_compiled_path_compiles_each_shape_once_outside_the_passes(small_inputs):
    """On a faked GPU torch.compile only traces (backend eager): Inductor's kernels need the device."""
    ids = np.full((2, 8), 5, dtype=np.int64)
    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint), compile_mode="max-autotune")
        assert not runtime.graphs
        assert runtime.warm_up([(2, 8)]) > 0
        eager = open_runtime("pytorch-cuda", str(small_inputs.checkpoint))
        assert np.abs(runtime.run(ids, ids * 0, ids * 0 + 1) - eager.run(ids, ids * 0, ids * 0 + 1)).max() < 1e-5


def test_options_are_checked(small_inputs):
    with faked(gpu=H200):
        with pytest.raises(UsageError, match="expected precision fp32, tf32, fp16, bf16, got 'int8'"):
            open_runtime("pytorch-cuda", str(small_inputs.checkpoint), precision="int8")
        with pytest.raises(UsageError, match="expected compile_mode None or default, max-autotune"):
            open_runtime("pytorch-cuda", str(small_inputs.checkpoint), compile_mode="fast")
    with faked(without=["torch_cuda"]):
        with pytest.raises(BackendUnavailableError, match="expected a CUDA device torch can use"):
            open_runtime("pytorch-cuda", str(small_inputs.checkpoint))



def test_the_real_devices_tf32_switch_holds_only_inside_its_block():
    """CudaDevice.matmul_precision is torch's process-wide setting: TF32 inside the tf32 path's calls, put back after
    them, an error included (the switch itself needs no device)."""
    import torch

    from tinybert.runtimes.cuda import CudaDevice

    device, before = object.__new__(CudaDevice), torch.get_float32_matmul_precision()
    with device.matmul_precision("tf32"):
        assert torch.get_float32_matmul_precision() == "high"
    with pytest.raises(RuntimeError, match="in the block"), device.matmul_precision("fp16"):
        assert torch.get_float32_matmul_precision() == "highest"
        raise RuntimeError("an error in the block")
    assert torch.get_float32_matmul_precision() == before

@pytest.mark.skipif(not GPU_MODULE._real_gpus(), reason="needs a CUDA device torch can use: runs the graph "
                                                          "capture, pinned copies and TF32 switch a faked GPU leaves out")
def test_a_real_cuda_device(small_inputs, small_features, reference):
    arrays = _features(small_features)
    for precision in ("fp32", "fp16"):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint), precision=precision)
        logits = model_logits(runtime, arrays, 8, "tight")
        assert not runtime.device.faked and runtime.shapes
        limit = EXPORT_TOLERANCE if precision == "fp32" else 0.5
        assert np.abs(logits - reference).max() <= limit
        assert np.array_equal(logits, model_logits(runtime, arrays, 8, "tight"))  # replayed graphs, same outputs


# ---------------------------------------------------------------- the steps on the GPU

def test_the_eval_table_adds_the_gpu_column(tmp_path):
    from tinybert.steps.report import build_table

    for bs, fps in ((1, 100.0), (8, 400.0)):
        (tmp_path / f"bs{bs}_accuracy.json").write_text(json.dumps(
            {"accuracy": 80.0, "num_samples": 10, "result_dir": "r"}))
        (tmp_path / f"bs{bs}_perf.json").write_text(json.dumps(
            {"requests_in_flight": 1, "throughput": fps, "spread": {"throughput": [fps - 1, fps + 1]},
             "ort_model": {"requested": "auto", "path": "gpu-fp16", "reason": "gate passed", "setting": "GPU_MODEL"}}))
    (tmp_path / "bs8_gpu_perf.json").write_text(json.dumps(
        {"requests_in_flight": 1, "throughput": 900.0, "spread": {"throughput": [890.0, 910.0]}, "device": FAKED,
         "ort_model": {"requested": "gpu-fp32", "path": "gpu-fp32", "reason": "", "setting": "GPU_MODEL"}}))
    table = build_table(str(tmp_path), [1, 8], "gpu", "ckpt", accuracy_ort_model="gpu-fp32")
    assert f"| GPU性能 ({FAKED}, gpu-fp32) (fps) |" in table
    assert "| TinyBERT (bs1) | - | 80.00 | 10 | 100 (99–101) | - |" in table
    assert "| TinyBERT (bs8) | - | 80.00 | 10 | 400 (399–401) | 900 (890–910) |" in table
    assert "GPU_MODEL=auto: 性能列 (speed) ran gpu-fp16" in table and "no CPU matrix-multiply rate" in table
    record = json.loads((tmp_path / "table.json").read_text())
    assert record["gpu_column"]["device"] == FAKED and record["rows"][1]["gpu_throughput"] == 900.0


def test_without_a_gpu_the_table_has_no_gpu_column(tmp_path):
    from tinybert.steps.report import gpu_column

    assert gpu_column(str(tmp_path), [1, 8]) is None


def test_ray_actors_ask_for_a_gpu_on_a_gpu_path():
    from types import SimpleNamespace

    from tinybert.classify import ray_engine

    options = SimpleNamespace(actor_cpus=2, actors=None)
    gpu_job, cpu_job = SimpleNamespace(path="gpu-fp16"), SimpleNamespace(path="fast")
    assert ray_engine.actor_resources(gpu_job, options) == {"num_cpus": 2, "num_gpus": 1}
    assert ray_engine.actor_resources(cpu_job, options) == {"num_cpus": 2}
    ray = SimpleNamespace(cluster_resources=lambda: {"CPU": 16.0, "GPU": 2.0})
    assert ray_engine.actor_count(ray, options, 10, gpu_job) == 2 and ray_engine.actor_count(ray, options, 10, cpu_job) == 8


def test_classify_on_the_gpu_writes_the_cpu_paths_output(tmp_path, small_inputs, monkeypatch):
    """The fp32 GPU path and the fp32 CPU path label every sentence alike; the output format is the same."""
    from tinybert.classify.pipeline import ClassifyOptions, classify_corpus

    monkeypatch.chdir(tmp_path)
    common = dict(input_path=str(small_inputs.tsv), ckpt_dir=str(small_inputs.checkpoint), model_dir=str(tmp_path),
                  chunk_sentences=16, progress=False)
    cpu = classify_corpus(ClassifyOptions(output="cpu.tsv", ort_model="fast", backend="onnxruntime", **common))
    with faked(gpu=H200):
        gpu = classify_corpus(ClassifyOptions(output="gpu.tsv", gpu_model="gpu-fp32", backend="auto", **common))
    assert gpu["sentences"] == cpu["sentences"] == small_inputs.count
    cpu_rows = [line.split("\t") for line in Path("cpu.tsv").read_text().splitlines()]
    gpu_rows = [line.split("\t") for line in Path("gpu.tsv").read_text().splitlines()]
    assert [r[:2] for r in gpu_rows] == [r[:2] for r in cpu_rows]
    assert max(abs(float(a[2]) - float(b[2])) for a, b in zip(gpu_rows[1:], cpu_rows[1:])) <= 1e-4
    assert not list(tmp_path.glob(".*.classify"))


@pytest.mark.slow
def test_predict_runs_on_the_gpu_where_auto_finds_one(tmp_path, small_inputs):
    sentences = ["a very good movie", "the plot is awful"]
    args = ("predict", *sentences, "--model_dir", small_inputs.checkpoint, "--backend", "auto", "--gpu_model",
            "gpu-fp32", "--gates_dir", tmp_path)
    gpu = run_cli(*args, cwd=tmp_path, env={FAKE_GPU_ENV: H200}, check=True)
    cpu = run_cli(*args, cwd=tmp_path, env={"TINYBERT_WITHOUT": "torch_cuda"}, check=True)
    assert "BACKEND=auto -> gpu" in gpu.stderr and "runtime: pytorch-cuda on GPU" in gpu.stderr
    assert "BACKEND=auto -> onnxruntime" in cpu.stderr
    labels = lambda out: [row.split("\t")[:2] for row in out.splitlines()]  # noqa: E731
    assert labels(gpu.stdout) == labels(cpu.stdout) and len(gpu.stdout.splitlines()) == 3
    refused = run_cli("predict", "x", "--model_dir", small_inputs.checkpoint, "--backend", "ais_bench", cwd=tmp_path)
    assert_clean_error(refused, "expected BACKEND auto, gpu or onnxruntime for this step, got 'ais_bench'")


def test_postprocess_scores_alike_without_scikit_learn():
    from tinybert.steps.postprocess import _binary_metrics, classification_metrics

    rng = np.random.default_rng(0)
    labels, predictions = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    ours, theirs = _binary_metrics(labels, predictions), classification_metrics(labels, predictions)
    assert ours["confusion_matrix"] == theirs["confusion_matrix"] and ours["correct"] == theirs["correct"]
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"]) and ours["f1"] == pytest.approx(theirs["f1"])
    assert _binary_metrics(np.zeros(3, int), np.zeros(3, int))["f1"] == 0.0


@pytest.mark.slow
def test_the_shell_steps_run_on_a_faked_gpu(tmp_path, small_inputs):
    """ais_inference.sh writes the ais_bench result folder from the GPU, postprocess scores it, perf_gpu.sh prints the
    card's throughput line and its JSON names the device; without a GPU perf_gpu.sh says there is no GPU stack."""
    env = {"GLUE_DIR": str(small_inputs.tsv.parent), "CKPT_DIR": str(small_inputs.checkpoint), FAKE_GPU_ENV: H200,
           **QUICK_PERF, "LOOP": "2"}
    assert run_script("preprocess_data.sh", cwd=tmp_path, env=env).returncode == 0
    proc = run_script("ais_inference.sh", "8", cwd=tmp_path, env={**env, "OUTPUT_DIRNAME": "gpu"})
    assert proc.returncode == 0, proc.stderr
    assert "[INFO] BACKEND=auto -> gpu" in proc.stderr and "runtime: pytorch-cuda on GPU 0" in proc.stdout
    summary = json.loads((tmp_path / "result" / "gpu_summary.json").read_text())
    assert summary["args"]["backend"] == "pytorch-cuda" and summary["args"]["call_tokens"] == 0
    scored = run_script("postprocess_data.sh", "gpu", cwd=tmp_path, env=env)
    assert scored.returncode == 0 and "[INFO] accuracy:" in scored.stdout
    ran = run_cli("infer", "--runtime", "pytorch", "--model", small_inputs.checkpoint, "--input",
                  input_arg(tmp_path / "bert_bin"), "--output", tmp_path / "result", "--output_dirname", "cpu",
                  "--batchsize", "8", "--no_progress", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    compared = run_script("compare.sh", "cpu", "gpu", cwd=tmp_path, env=env)
    assert compared.returncode == 0 and "100.00%" in compared.stdout, compared.stdout
    perf = run_script("perf_gpu.sh", "4", "--json_out", "g.json", cwd=tmp_path, env=env)
    assert perf.returncode == 0, perf.stderr
    assert "[INFO] backend: gpu (PyTorch CUDA, GPU_MODEL=gpu-fp32)" in perf.stdout
    assert "[INFO] throughput 1000*batchsize.mean(4)/NPU_compute_time.mean(" in perf.stdout
    assert "[INFO] 1 shape(s) captured or compiled in " in perf.stdout  # before the timing, never in it
    record = json.loads((tmp_path / "g.json").read_text())
    assert record["device"] == FAKED and record["workload"] == "full-length [4, 64] batch"
    without = run_script("perf_gpu.sh", "4", cwd=tmp_path, env={**env, FAKE_GPU_ENV: "", "TINYBERT_WITHOUT": "torch_cuda"})
    assert_clean_error(without, "no GPU stack here", "torch_cuda treated as not installed", code=3)


# Packages a PyTorch GPU image lacks: the GPU check must not import them.
NOT_ON_A_GPU_IMAGE = ("onnxsim", "openvino", "nncf", "sklearn", "ray", "matplotlib", "torchao")
BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not on a GPU image)", name=name)
sys.meta_path.insert(0, Block())
import importlib.util
_find = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a, **k: None if name.split('.')[0] in {blocked!r} else _find(name, *a, **k)
sys.argv = ["tinybert", *sys.argv[1:]]
from tinybert.cli.main import main
sys.exit(main())
"""


@pytest.mark.slow
def test_the_gpu_check_runs_with_a_pytorch_image_alone(tmp_path, small_inputs):
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text(small_inputs.tsv.read_text(encoding="utf-8"), encoding="utf-8")
    code = BLOCKER.format(blocked=NOT_ON_A_GPU_IMAGE)
    proc = __import__("subprocess").run(
        [sys.executable, "-c", code, "gpu-check", "--data_file", str(small_inputs.tsv), "--ckpt_dir",
         str(small_inputs.checkpoint), "--corpus", str(corpus), "--work_dir", str(tmp_path / "check"),
         "--batch_sizes", "1 4", "--seconds", "0", "--loop", "2", "--repeats", "2", "--no_progress"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO), FAKE_GPU_ENV: H200}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "blocked" not in proc.stderr
    record = json.loads((tmp_path / "check" / "gpu_check.json").read_text())
    assert record["device"] == FAKED and record["fp32_vs_pytorch_cpu"]["within"]
    fastest = record["fastest_gated"]["path"]
    assert set(record["paths"]) == {"gpu-fp32", fastest} and set(record["paths"]["gpu-fp32"]["perf"]) == {"1", "4"}
    assert record["classify"]["gpu-fp32"]["labels_same_as_fp32"] == 1.0
    assert record["classify"]["gpu-fp32"]["sentences"] == small_inputs.count
    assert "[SUMMARY] gpu-fp32 vs PyTorch eager on the CPU" in proc.stdout and "[SUMMARY] classify gpu-fp32" in proc.stdout
    corpus_run = record["model_on_corpus"][fastest]  # the model alone on the corpus's features
    assert corpus_run["sentences"] == small_inputs.count and corpus_run["sentences_per_s"] > 0
    assert corpus_run["shapes"] >= 1 and corpus_run["prepare_s"] > 0 and len(corpus_run["passes_sentences_per_s"]) == 2
    assert record["model_on_corpus"]["gpu-fp32"]["predictions_same_as_fp32"] == 1.0
    assert f"[SUMMARY] model on the corpus, {fastest}:" in proc.stdout


# ---------------------------------------------------------------- issue 40: compiled shapes, warm-ups, the pool, fusion

def _ids(rows: int, length: int):
    ids = np.full((rows, length), 5, dtype=np.int64)
    return ids, np.zeros_like(ids), np.ones_like(ids)


def test_each_runtime_compiles_a_code_object_of_its_own(small_inputs):
    """Dynamo counts recompiles per code object: runtimes sharing one share its limit (eight shapes in all)."""
    with faked(gpu=H200):
        first, second = (open_runtime("pytorch-cuda", str(small_inputs.checkpoint), compile_mode="max-autotune")
                         for _ in range(2))
    assert first.forward.__wrapped__.__code__ is not second.forward.__wrapped__.__code__


def test_a_recompile_limit_hit_is_an_error_not_an_eager_fallback(small_inputs, monkeypatch):
    from torch._dynamo.exc import FailOnRecompileLimitHit

    from tinybert.runtimes.cuda import CudaRuntime

    monkeypatch.setattr(CudaRuntime, "compile_limit", lambda self: len(self._shapes))  # one too few: forced
    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint), compile_mode="default")
        with pytest.raises(FailOnRecompileLimitHit) as raised:
            runtime.run(*_ids(2, 8))
    assert "expected at most 0 compiled graph(s) of this runtime, got one more at shape (2, 8)" in \
        "".join(getattr(raised.value, "__notes__", []))


def test_a_compiled_shape_is_warmed_until_it_replays_before_any_pass(small_inputs):
    """Inductor's CUDA graph trees warm up on a shape's first call and record on its second: the prepared shape has
    had both, and a replay, before the pass's first call (the graphs themselves need a real GPU)."""
    from tinybert.runtimes.cuda import COMPILED_WARM_CALLS

    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint), compile_mode="max-autotune")
        compiled, calls = runtime.forward, []
        runtime.forward = lambda *inputs: calls.append(tuple(inputs[0].shape)) or compiled(*inputs)
        runtime.warm_up([(2, 8)])
        assert calls == [(2, 8)] * COMPILED_WARM_CALLS and COMPILED_WARM_CALLS >= 3
        runtime.run(*_ids(2, 8))
    assert len(calls) == COMPILED_WARM_CALLS + 1  # the pass: one call, a replay


def test_every_graph_of_a_runtime_is_captured_into_its_one_pool(monkeypatch):
    """CudaDevice's real-GPU calls with torch.cuda's stand-ins: one pool per runtime, passed to every capture."""
    import torch

    from tinybert.runtimes.cuda import CudaDevice

    pools, captured = iter(["pool-a", "pool-b"]), []

    @__import__("contextlib").contextmanager
    def graph(cuda_graph, pool=None):
        captured.append(pool)
        yield

    class Stream:
        def __init__(self, *args):
            pass

        def wait_stream(self, other):
            pass

    for name, value in {"set_device": lambda device: None, "graph_pool_handle": lambda: next(pools),
                        "Stream": Stream, "current_stream": lambda device=None: Stream(),
                        "stream": lambda s: __import__("contextlib").nullcontext(), "graph": graph,
                        "CUDAGraph": lambda: type("Graph", (), {"replay": lambda self: None})()}.items():
        monkeypatch.setattr(torch.cuda, name, value)
    first, second = CudaDevice(Gpu(0, H200, (9, 0))), CudaDevice(Gpu(0, H200, (9, 0)))
    for shape in ((1, 8), (4, 16), (4096, 64)):
        first.capture(lambda x: x + 1, (torch.zeros(shape),))
    second.capture(lambda x: x + 1, (torch.zeros(2, 8),))
    assert captured == ["pool-a"] * 3 + ["pool-b"]


def test_the_gpu_path_runs_one_qkv_projection_and_fused_attention(small_inputs, small_features, reference,
                                                                 monkeypatch):
    import torch

    sdpa, calls = torch.nn.functional.scaled_dot_product_attention, []
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(a[0].shape) or sdpa(*a, **k))
    with faked(gpu=H200):
        fused = open_runtime("pytorch-cuda", str(small_inputs.checkpoint))
        peer = open_runtime("pytorch-cuda", str(small_inputs.checkpoint), graphs=False, fused=False)
        unfused = []
        for layer in fused.model.bert.encoder.layer:
            layer.attention.self.query.register_forward_hook(lambda *args: unfused.append(1))
        logits = model_logits(fused, _features(small_features), 8, "tight")
        assert calls and not unfused  # no separate Q/K/V linears, SDPA in every layer
        layers = len(fused.model.bert.encoder.layer)
        assert len(calls) % layers == 0 and calls[0][2] > 1 and calls[layers - 1][2] == 1  # last layer: [CLS] only
        calls.clear()
        model_logits(peer, _features(small_features), 8, "tight")
    assert not calls  # the peer rows run the model's own attention
    assert np.abs(logits - reference).max() <= EXPORT_TOLERANCE


@pytest.mark.parametrize("segments_given", [False, True])
def test_the_gpu_staging_masks_padding_and_filler_rows(small_inputs, segments_given):
    """The rule the slow tests rely on: a call padded to its shape's length and rows sees mask 1 on its real tokens
    only, ids and segments 0 elsewhere, whatever an earlier, longer call left in the buffers; with segments all 0
    only ids and lengths are sent, the mask and segments built on the device."""
    rng = np.random.default_rng(0)
    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint))
        for rows, length in ((18, 16), (17, 11)):  # both (18, 16): the second over the first's buffers
            lengths = rng.integers(1, length + 1, rows)
            lengths[0] = length
            mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int64)
            ids = rng.integers(1, 20, (rows, length)) * mask
            segments = mask.copy() if segments_given else np.zeros_like(mask)
            runtime.run(ids, segments, mask)
            [shape] = runtime._shapes.values()
            assert shape.compact is not segments_given and shape.static.dtype == torch_int32()
            assert shape.static.numel() == (3 * 18 * 16 if segments_given else 18 * 16 + 18)
            staged = np.stack([plane.numpy() for plane in shape.inputs(shape.static)])
            assert staged.shape == (3, 18, 16) and staged.dtype == np.int64
            expected_mask = np.zeros((18, 16), dtype=np.int64)
            expected_mask[:rows, :length] = mask
            assert np.array_equal(staged[2], expected_mask)
            assert np.array_equal(staged[0][:rows, :length], ids) and not (staged[:2] * (1 - expected_mask)).any()
            assert np.array_equal(staged[1][:rows, :length], segments)


def torch_int32():
    import torch

    return torch.int32


def test_two_faked_gpus_and_devices_chosen_by_index(small_inputs, monkeypatch):
    monkeypatch.delenv(FAKE_GPU_ENV, raising=False)
    with faked(gpu="NVIDIA H200, NVIDIA A100"):
        found = capabilities.gpus()
        assert [(g.index, g.name) for g in found] == [(0, FAKED), (1, "NVIDIA A100 (faked: computed on the CPU)")]
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint), device=1)
        assert runtime.device.gpu.index == 1
        assert "DEVICE 2: expected a CUDA device id below 2" in capabilities.gpu_unmet("torch_cuda", 2)
    monkeypatch.setattr(GPU_MODULE, "_real_gpus", lambda: (Gpu(0, H200, (9, 0)), Gpu(1, "Tesla T4", (7, 5))))
    assert capabilities.gpu_unmet("cuda_bf16", 0) is None  # the bf16 check reads DEVICE's GPU, not the first
    assert capabilities.gpu_unmet("cuda_bf16", 1) == "Tesla T4 (compute capability 7.5) has no bf16"
    from tinybert.runtimes.needs import unmet

    assert unmet("cuda_bf16", device=1) == "Tesla T4 (compute capability 7.5) has no bf16"


def test_nvidia_smi_is_asked_by_pci_bus_id_not_torchs_index(monkeypatch):
    """torch's index counts the devices CUDA_VISIBLE_DEVICES (or Ray) shows; nvidia-smi's counts them all."""
    import shutil
    import subprocess
    from types import SimpleNamespace

    asked = []
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(subprocess, "run", lambda args, **kwargs: asked.append(args) or
                        SimpleNamespace(stdout="1980\n"))
    props = SimpleNamespace(pci_domain_id=0, pci_bus_id=0x17, pci_device_id=0)
    assert GPU_MODULE.pci_bus_id(props) == "00000000:17:00.0"
    assert GPU_MODULE._smi_max_clock_mhz(GPU_MODULE.pci_bus_id(props)) == 1980.0
    assert asked[0][1] == "--id=00000000:17:00.0"
    assert GPU_MODULE.pci_bus_id(SimpleNamespace(uuid="5e0e-11")) == "GPU-5e0e-11"


@pytest.mark.slow
def test_compiled_runtimes_compile_every_shape_and_never_hit_the_limit(small_inputs, caplog):
    """The probe: two max-autotune runtimes over 16 (rows, length) shapes, then a torch-dynamic one (GPc), each
    shape compiled (no eager fallback), no recompile-limit warning."""
    import logging

    from tinybert.runtimes.torch_peer import graphs_compiled

    shapes = [(rows, length) for rows in (1, 64) for length in range(8, 72, 8)]
    caplog.set_level(logging.WARNING, logger="torch._dynamo")
    with faked(gpu=H200):
        for _ in range(2):
            runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint), compile_mode="max-autotune")
            before = graphs_compiled()
            runtime.warm_up(shapes)
            assert graphs_compiled() - before == len(shapes) and len(runtime.shapes) == len(shapes)
        dynamic = open_runtime("pytorch-cuda", str(small_inputs.checkpoint), compile_mode="default", dynamic=None,
                               fused=False)
        before = graphs_compiled()
        dynamic.warm_up(shapes)
        assert graphs_compiled() > before
    assert "recompile_limit" not in caplog.text
