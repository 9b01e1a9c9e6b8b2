"""The NPU branches of the scripts, driven by stand-ins for `atc` and `ais_bench` that record how
they were called, and the clear failures where the real tools are missing."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat

import pytest
from conftest import assert_clean_error, run_script

NO_CANN = {"CANN_SET_ENV": "/nonexistent/set_env.sh"}


def _path_without(tool: str) -> str:
    return os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                           if not os.path.exists(os.path.join(d, tool)))


@pytest.fixture
def fake_tools(tmp_path):
    """A bin/ with a recording `atc`, and an importable recording `ais_bench` package."""
    bin_dir, pkg = tmp_path / "bin", tmp_path / "py" / "ais_bench"
    bin_dir.mkdir()
    pkg.mkdir(parents=True)
    atc = bin_dir / "atc"
    atc.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$RECORD"\n')
    atc.chmod(atc.stat().st_mode | stat.S_IEXEC)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("import os, sys\nopen(os.environ['RECORD'], 'w').write('\\n'.join(sys.argv[1:]) + '\\n')\n"
                                     "print('[INFO] throughput 1000*batchsize.mean(1)/NPU_compute_time.mean(1.0): 1000.0')\n")
    record = tmp_path / "record.txt"
    env = {**NO_CANN, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(tmp_path / "py"),
           "RECORD": str(record)}
    return env, record


@pytest.mark.slow
def test_onnx2om_runs_the_card_atc_command(tmp_path, fake_tools):
    env, record = fake_tools
    (tmp_path / "TinyBERT_sim_bs4.onnx").write_bytes(b"onnx")
    proc = run_script("onnx2om.sh", 4, "310P3", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert record.read_text().splitlines() == [
        "--framework=5", "--input_format=ND", "--model=./TinyBERT_sim_bs4.onnx",
        "--input_shape=input_ids:4,64;segment_ids:4,64;input_mask:4,64", "--output=./TinyBERT_bs4",
        "--soc_version=Ascend310P3", "--precision_mode=force_fp16", "--log=error"]
    run_script("onnx2om.sh", 4, "310B1", cwd=tmp_path, env={**env, "PRECISION_MODE": "allow_mix_precision"})
    assert "--precision_mode=allow_mix_precision" in record.read_text()


def test_onnx2om_without_atc_says_what_to_do(tmp_path):
    (tmp_path / "TinyBERT_sim_bs1.onnx").write_bytes(b"onnx")
    proc = run_script("onnx2om.sh", 1, "310P3", cwd=tmp_path, env={**NO_CANN, "PATH": _path_without("atc")})
    assert_clean_error(proc, "atc was not found", "CANN toolkit", "BACKEND=onnxruntime bash test/ais_inference.sh 1",
                       code=3)


def test_onnx2om_checks_its_arguments(tmp_path, fake_tools):
    env, _ = fake_tools
    assert_clean_error(run_script("onnx2om.sh", 1, "310P3", cwd=tmp_path, env=env),
                       "TinyBERT_sim_bs1.onnx", "run test/pth2onnx.sh 1")
    assert_clean_error(run_script("onnx2om.sh", 1, "310 P3", cwd=tmp_path, env=env), "chip name")
    assert_clean_error(run_script("onnx2om.sh", 1, cwd=tmp_path, env=env), "usage: bash test/onnx2om.sh")


def test_ais_inference_uses_ais_bench_with_the_card_arguments(tmp_path, fake_tools):
    env, record = fake_tools
    (tmp_path / "TinyBERT_bs8.om").write_bytes(b"om")
    proc = run_script("ais_inference.sh", 8, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "[INFO] backend: ais_bench" in proc.stdout
    assert record.read_text().splitlines() == [
        "--model", "./TinyBERT_bs8.om", "--input", "./bert_bin/input_ids,./bert_bin/segment_ids,./bert_bin/input_mask",
        "--output", "./result", "--outfmt", "TXT", "--batchsize", "8", "--device", "0"]
    run_script("ais_inference.sh", 8, cwd=tmp_path, env={**env, "OUTPUT_DIRNAME": "named", "DEVICE": "3"})
    assert shlex.split(record.read_text().replace("\n", " "))[-4:] == ["--device", "3", "--output_dirname", "named"]


@pytest.mark.slow
def test_perf_uses_ais_bench_loop(tmp_path, fake_tools):
    env, record = fake_tools
    (tmp_path / "TinyBERT_bs1.om").write_bytes(b"om")
    proc = run_script("perf.sh", 1, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    card = ["--model", "./TinyBERT_bs1.om", "--loop", "1000", "--batchsize", "1", "--device", "0"]
    assert record.read_text().split() == card
    # --json_out is for our perf step: the card's command stays as it is, and ais_bench's line is the record
    asked = run_script("perf.sh", 1, "--json_out", "perf.json", cwd=tmp_path, env=env)
    assert asked.returncode == 0, asked.stderr
    assert record.read_text().split() == card and not (tmp_path / "perf.json").exists()
    assert "ais_bench writes no JSON: --json_out perf.json not passed on" in asked.stdout
    assert "[INFO] throughput 1000*batchsize.mean(1)" in asked.stdout


def test_explicit_ais_bench_backend_fails_clearly_where_missing(tmp_path):
    proc = run_script("ais_inference.sh", 1, cwd=tmp_path, env={**NO_CANN, "BACKEND": "ais_bench"})
    assert_clean_error(proc, "ais_bench is not installed", "BACKEND=onnxruntime", code=3)
    assert_clean_error(run_script("perf.sh", 1, cwd=tmp_path, env={**NO_CANN, "BACKEND": "npu"}),
                       "expected BACKEND auto, ais_bench, gpu, cann or onnxruntime, got 'npu'")


def test_ais_bench_backend_needs_the_om_file(tmp_path, fake_tools):
    env, _ = fake_tools
    proc = run_script("ais_inference.sh", 2, cwd=tmp_path, env={**env, "BACKEND": "ais_bench"})
    assert_clean_error(proc, "TinyBERT_bs2.om", "run test/onnx2om.sh 2 <chip_name>")


def test_perf_gpu_without_a_gpu_stack_says_so(tmp_path):
    import onnxruntime

    if shutil.which("trtexec") or {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(
            onnxruntime.get_available_providers()):
        pytest.skip("this machine has a GPU stack; the no-GPU message cannot be shown here")
    (tmp_path / "TinyBERT_sim_bs1.onnx").write_bytes(b"onnx")
    assert_clean_error(run_script("perf_gpu.sh", 1, cwd=tmp_path), "no GPU stack here", "trtexec", code=3)


def test_onnx2om_builds_a_gear_model(tmp_path, fake_tools):
    env, record = fake_tools
    (tmp_path / "TinyBERT_sim_dynamic.onnx").write_bytes(b"onnx")
    proc = run_script("onnx2om.sh", 4, "310P3", cwd=tmp_path, env={**env, "DYNAMIC_DIMS": "16,32,48,64"})
    assert proc.returncode == 0, proc.stderr
    assert record.read_text().splitlines() == [
        "--framework=5", "--input_format=ND", "--model=./TinyBERT_sim_dynamic.onnx",
        "--input_shape=input_ids:4,-1;segment_ids:4,-1;input_mask:4,-1",
        "--dynamic_dims=16,16,16;32,32,32;48,48,48;64,64,64", "--output=./TinyBERT_bs4_dyn",
        "--soc_version=Ascend310P3", "--precision_mode=force_fp16", "--log=error"]
    assert_clean_error(run_script("onnx2om.sh", 4, "310P3", cwd=tmp_path, env={**env, "DYNAMIC_DIMS": "16,x"}),
                       "expected positive integer gears in DYNAMIC_DIMS, got 'x'")


# An ais_bench stand-in that really writes outputs: logits (sequence length it was fed, sample number).
WRITING_AIS_BENCH = '''
import argparse, json, os, sys
p = argparse.ArgumentParser()
for a in ("--model", "--input", "--output", "--output_dirname", "--outfmt", "--batchsize", "--dymDims", "--device"):
    p.add_argument(a)
a = p.parse_args()
with open(os.environ["RECORD"], "a") as r:
    r.write(a.dymDims + "\\n")
if os.environ.get("LOCK_RECORD"):  # is the lock beside the per-gear folder held while ais_bench runs?
    import fcntl
    fd = os.open(a.output + ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        state = "free"
    except OSError:
        state = "held"
    with open(os.environ["LOCK_RECORD"], "a") as r:
        r.write(state + "\\n")
first = a.input.split(",")[0]
out = os.path.join(a.output, a.output_dirname)
os.makedirs(out)
info = {}
for i, name in enumerate(sorted(os.listdir(first))):
    length = os.path.getsize(os.path.join(first, name)) // 8
    stem = name[:-4]
    with open(os.path.join(out, stem + "_0.txt"), "w") as f:
        f.write(f"{length:f} {int(stem[5:]):f} \\n")
    info[str(i)] = {"infiles": [os.path.join(first, name)], "outfiles": [os.path.join(out, stem + "_0.txt")]}
json.dump({"filesinfo": info, "args": {"batchsize": a.batchsize}, "npu_compute_time_list": [1.0]},
          open(os.path.join(a.output, a.output_dirname + "_summary.json"), "w"))
'''


def _gear_workdir(tmp_path, env, small_inputs) -> None:
    """Features of the small set, the writing ais_bench stand-in and a bs4 gear OM model in tmp_path."""
    (tmp_path / "py" / "ais_bench" / "__main__.py").write_text(WRITING_AIS_BENCH)
    pre = run_script("preprocess_data.sh", cwd=tmp_path, env={**env, "DATA_FILE": str(small_inputs.tsv),
                                                               "CKPT_DIR": str(small_inputs.checkpoint)})
    assert pre.returncode == 0, pre.stderr
    (tmp_path / "TinyBERT_bs4_dyn.om").write_bytes(b"om")


@pytest.mark.slow
def test_ais_inference_runs_each_gear_and_merges_one_result_folder(tmp_path, fake_tools, small_inputs):
    env, record = fake_tools
    _gear_workdir(tmp_path, env, small_inputs)
    gears = {**env, "DYNAMIC_DIMS": "16,32,48,64", "OUTPUT_DIRNAME": "geared"}
    proc = run_script("ais_inference.sh", 4, cwd=tmp_path, env=gears)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from tinybert.data.features import load_features

    features, _ = load_features(str(tmp_path / "bert_bin"))
    lengths = features.input_mask.sum(1)
    gear_of = [min(g for g in (16, 32, 48, 64) if g >= length) for length in lengths]
    # One ais_bench call per gear that holds samples, smallest first, all three inputs at that gear.
    assert record.read_text().split() == [f"input_ids:4,{g};segment_ids:4,{g};input_mask:4,{g}"
                                          for g in sorted(set(gear_of))]
    folder = tmp_path / "result" / "geared"
    for i, gear in enumerate(gear_of):  # each sample ran once, at the smallest gear that holds it
        fed, sample = map(float, (folder / f"input{i}_0.txt").read_text().split())
        assert sample == i and fed == gear
    post = run_script("postprocess_data.sh", "geared", cwd=tmp_path, env=env)
    assert post.returncode == 0 and f"/{len(lengths)} samples" in post.stdout, post.stderr
    assert len(lengths) == small_inputs.count
    assert sorted(p.name for p in (tmp_path / "result").iterdir()) == ["geared", "geared_summary.json"]

    recorded = json.loads((tmp_path / "result" / "geared_summary.json").read_text())["args"]["features"]
    assert recorded["num_samples"] == len(lengths) and recorded["manifest"].endswith("bert_bin/manifest.json")
    again = run_script("ais_inference.sh", 4, cwd=tmp_path, env=gears)
    assert_clean_error(again, "geared", "refusing to overwrite")


@pytest.mark.slow
def test_gear_runs_hold_their_lock_and_remove_what_killed_runs_left(tmp_path, fake_tools, small_inputs):
    """The per-gear folders are staging: locked while ais_bench writes them; a killed run's are removed
    by the next run, a live run's are not."""
    import fcntl

    env, _ = fake_tools
    _gear_workdir(tmp_path, env, small_inputs)
    result = tmp_path / "result"
    (result / ".gears-killed01" / "gear16").mkdir(parents=True)  # a killed run: nobody holds its lock
    (result / ".gears-killed01" / "gear16" / "input0_0.txt").write_text("1.0 2.0 \n")
    (result / ".gears-killed01.lock").touch()
    (result / ".gears-running").mkdir()  # a run in progress: its lock is held (here, by this test)
    lock = result / ".gears-running.lock"
    lock.touch()
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        proc = run_script("ais_inference.sh", 4, cwd=tmp_path,
                          env={**env, "DYNAMIC_DIMS": "16,32,48,64", "OUTPUT_DIRNAME": "geared",
                               "LOCK_RECORD": str(tmp_path / "locks.txt")})
    finally:
        os.close(fd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    states = (tmp_path / "locks.txt").read_text().split()
    assert len(states) >= 2 and set(states) == {"held"}  # held across every ais_bench call
    assert "[INFO] removed 1 stale staging folder(s) left by killed runs in ./result" in proc.stdout
    assert sorted(p.name for p in result.iterdir()) == [".gears-running", ".gears-running.lock",
                                                       "geared", "geared_summary.json"]


def test_the_gears_command_splits_features_and_prints_each_gear_for_the_scripts(small_features, tmp_path):
    from conftest import cli

    proc = cli("gears", "split", "--bin_dir", small_features, "--edges", "16,32,64", "--output_dir", tmp_path / "g",
               "--print_gears", check=True)
    printed = [line.split() for line in proc.stdout.splitlines() if line[:1].isdigit()]
    assert [int(length) for length, _ in printed] and all(folder.endswith(f"gear{length}") for length, folder in printed)
    assert {int(length) for length, _ in printed} <= {16, 32, 64}
    counted = sum(len(os.listdir(os.path.join(folder, "input_ids"))) for _, folder in printed)
    assert counted == len(os.listdir(small_features / "input_ids"))
