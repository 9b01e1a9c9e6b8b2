"""eval_all.sh's table and the static int8 path on the real dev set and demo checkpoint when `../shared` has them
(the generated ones otherwise), in one model-card working directory: the static int8 path calibrated through the
scripts holds its gate, then eval_all.sh builds the table, its speed column from the path ORT_MODEL=auto chose
among the gated ones there. The fast and static paths' numbers: tests/test_real_numbers.py."""

from __future__ import annotations

import json

import pytest
from conftest import QUICK_PERF, assert_clean_error, fast_models_of, run_script
from pipeline_steps import infer_and_score, make_workdir, shared_eager_logits, written_logits


@pytest.fixture(scope="module")
def workdir(inputs, tmp_path_factory):
    """With the run's one export of the fast models (test/pth2onnx.sh's own is tests/test_pipeline.py's)."""
    return make_workdir(inputs, tmp_path_factory.mktemp("work"), fast_models_of(inputs, tmp_path_factory))


@pytest.fixture(scope="module")
def eager(inputs, tmp_path_factory):
    return shared_eager_logits(inputs, tmp_path_factory)


@pytest.mark.slow
def test_static_int8_path_end_to_end(workdir, inputs, eager, tmp_path_factory):
    """ORT_MODEL=int8_static through the scripts at bs 64: pth2onnx.sh calibrates on a training
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
    export = run_script("pth2onnx.sh", 64, cwd=root, env=env)
    assert export.returncode == 0, export.stdout + export.stderr
    record = json.loads((root / "TinyBERT_int8_static.calibration.json").read_text())
    assert record["calibration_file"] == "train.tsv" and record["seed"] == 0
    folder, scored = infer_and_score((root, env), 64, "int8_static")
    assert scored["num_samples"] == inputs.count
    agreement = (written_logits(folder, len(eager_logits)).argmax(1) == eager_logits.argmax(1)).mean()
    if inputs.real:  # the gate on the dev set
        assert record["check"]["agreement"] >= 0.99
        assert abs(scored["accuracy"] - eager_accuracy) <= 0.3 and agreement >= 0.99
    else:  # a random generated checkpoint has near-tied logits; int8 still has to track it
        assert agreement >= 0.9


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
    assert "M=25 " in markdown and f"-> {rate['by_m'][0]['best']:.1f}" in markdown and rate["features"] in markdown
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
