"""The prepared GPU script (test/gpu_all.sh, checks/gpu_all.py): one [SUMMARY] line per target, one record for
docs/measurements/; on a faked GPU it finishes on the CPU, scaled down, and says its figures are not a GPU's."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from conftest import QUICK_PERF, run_script
from test_gpu import BLOCKER, NOT_ON_A_GPU_IMAGE
from tinybert.capabilities import FAKE_GPU_ENV
from tinybert.checks import gpu_all

TARGETS = {"corpus": 650000, "card_shape": 4861, "ratio": 0.8, "eval_s": 180.0}
NOT_A_GPU = "[faked GPU: CPU figures, not GPU figures]"


def test_a_slice_of_the_corpus_keeps_its_header_and_first_lines(tmp_path):
    source = tmp_path / "train.tsv"
    source.write_text("sentence\tlabel\n" + "".join(f"s{i}\t{i % 2}\n" for i in range(10)), encoding="utf-8")
    assert gpu_all.slice_corpus(str(source), str(tmp_path / "cut.tsv"), 0) == str(source)
    cut = gpu_all.slice_corpus(str(source), str(tmp_path / "cut.tsv"), 3)
    assert open(cut, encoding="utf-8").read() == "sentence\tlabel\ns0\t0\ns1\t1\ns2\t0\n"


def test_each_target_is_judged_and_a_faked_gpus_figures_are_said_not_to_be_a_gpus():
    real, fake = SimpleNamespace(faked=False), SimpleNamespace(faked=True)
    part = {"rate": 700000.0, "runs": {"gpu-fp16": {"sentences": 67349}}}
    assert gpu_all.summary_line("model_on_corpus", part, TARGETS, real).endswith("on an H200: met)")
    assert gpu_all.summary_line("card_shape_fp16", {"rate": 4000.0}, TARGETS, real).endswith("NOT met)")
    slow_eval = {"wall_s": 200.0, "gpu_column": True}
    assert "(target <= 180 s: NOT met)" in gpu_all.summary_line("eval_all", slow_eval, TARGETS, real)
    assert gpu_all.summary_line("eval_all", {"error": "UsageError: x"}, TARGETS, fake) == \
        f"[SUMMARY] eval_all: FAILED (UsageError: x) {NOT_A_GPU}"
    rows = {row: {str(bs): {"sentences_per_s": 1.0, "shapes": 4, "graphs_compiled": 3, "eager_fallback": True}
                  for bs in gpu_all.COMPARED_SIZES} for row in (gpu_all.COMPILED_ROW, gpu_all.GRAPH_ROW)}
    line = gpu_all.summary_line("compiled_vs_graphs", {"rows": rows}, TARGETS, fake)
    assert "4 shapes, EAGER FALLBACK" in line and line.endswith(NOT_A_GPU)


@pytest.mark.slow
def test_the_prepared_script_runs_on_a_faked_gpu_with_a_pytorch_images_packages(tmp_path, small_inputs):
    """The whole script, a tiny slice, the image's packages alone (the others blocked in every process it starts):
    five targets, each said to be the CPU's; the record has the command, device, versions and output."""
    image = tmp_path / "image"
    image.mkdir()
    blocker = BLOCKER.format(blocked=NOT_ON_A_GPU_IMAGE).split("sys.argv")[0]  # the blocking, not the CLI
    (image / "sitecustomize.py").write_text(blocker, encoding="utf-8")
    out = tmp_path / "record"
    proc = run_script("gpu_all.sh", small_inputs.tsv, "--perf_seconds", "0", "--perf_repeats", "1",
                      "--bench_repeats", "1", "--eval_sizes", "1", "--compare_sizes", "4", cwd=tmp_path,
                      env={FAKE_GPU_ENV: "NVIDIA H100 80GB HBM3", "PYTHONPATH": str(image), **QUICK_PERF,
                           "DATA_FILE": str(small_inputs.tsv), "CKPT_DIR": str(small_inputs.checkpoint),
                           "GPU_ALL_LINES": "20", "GPU_ALL_DIR": str(out), "LOOP": "2"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = [line for line in proc.stdout.splitlines() if line.startswith("[SUMMARY]")]
    assert len(summary) == 5 and all(line.endswith(NOT_A_GPU) for line in summary), summary
    assert "FAILED" not in proc.stdout and "blocked" not in proc.stderr
    assert "every figure below is the CPU's, NOT a GPU figure" in proc.stdout
    record = json.loads((out / "record.json").read_text())
    assert record["faked"] and record["command"].startswith(f"bash test/gpu_all.sh {small_inputs.tsv} --perf_seconds")
    assert ": python -m tinybert gpu-all --corpus" in record["command"]
    assert {"python", "torch", "numpy"} <= set(record["versions"]) and "onnxsim" not in record["versions"]
    assert record["parts"]["model_on_corpus"]["runs"]["gpu-fp16"]["sentences"] == 20
    assert record["parts"]["eval_all"]["gpu_column"]
    compiled = record["parts"]["compiled_vs_graphs"]["rows"][gpu_all.COMPILED_ROW]
    assert all(not figures["eager_fallback"] and figures["shapes"] >= 1 for figures in compiled.values())
    text = (out / "record.md").read_text(encoding="utf-8")
    assert "not a GPU figure" in text and "## Output" in text and summary[0] in text


@pytest.mark.slow
def test_one_part_alone_on_a_faked_gpu_writes_the_record(tmp_path, small_inputs, capsys):
    """--parts: a GPU session short of time reruns one target; the record still has command, device and versions."""
    from tinybert.capabilities import faked

    with faked(gpu="NVIDIA H100 80GB HBM3"):
        record = gpu_all.run_gpu_all(corpus=str(small_inputs.tsv), data_file=str(small_inputs.tsv),
                                     ckpt_dir=str(small_inputs.checkpoint), out_dir=str(tmp_path / "out"), device=0,
                                     lines=5, eval_script=None, targets=TARGETS, command="probe", perf_seconds=0,
                                     perf_repeats=1, parts=("card_shape_fp16",))
    said = capsys.readouterr().out
    assert list(record["parts"]) == ["card_shape_fp16"] and record["parts"]["card_shape_fp16"]["rate"] > 0
    assert [line for line in said.splitlines() if line.startswith("[SUMMARY]")] == record["summary"]
    assert record["summary"][0].startswith("[SUMMARY] gpu-fp16 at [1, 64]:") and record["faked"]
    saved = json.loads((tmp_path / "out" / "record.json").read_text())
    assert saved["command"] == "probe" and "torch" in saved["versions"] and "[SUMMARY]" in saved["output"]


def test_unknown_parts_are_refused(capsys):
    from tinybert.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(["gpu-all", "--parts", "eval_all,nope"])
    assert exited.value.code == 2 and "expected parts among model_on_corpus" in capsys.readouterr().err


def test_a_part_that_failed_makes_the_step_exit_1(monkeypatch, tmp_path):
    """Every part runs and is recorded; the exit status says one failed, so a script stops there."""
    from conftest import cli

    monkeypatch.setattr(gpu_all, "run_gpu_all", lambda **kw: {"parts": {"eval_all": {"error": "no GPU"}}})
    assert cli("gpu-all", "--out", tmp_path).returncode == 1
    monkeypatch.setattr(gpu_all, "run_gpu_all", lambda **kw: {"parts": {"eval_all": {"rows": []}}})
    assert cli("gpu-all", "--out", tmp_path).returncode == 0
