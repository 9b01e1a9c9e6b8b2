"""The model card's numbers through its steps, on the real dev set and demo checkpoint when `../shared` has them
(the generated ones otherwise): at bs 1 and 64 the fast and the card's static path give every sample and the
original TinyBERT's logits; the length-bucketed run records its work; the int8 paths hold their gates; eval_all.sh
builds the table. The steps' plumbing on tiny data: tests/test_pipeline.py."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import QUICK_PERF, assert_clean_error, run_script
from pipeline_steps import Chain, Exports, eager_logits, infer_and_score, make_workdir, written_logits


@pytest.fixture(scope="module")
def workdir(inputs, tmp_path_factory):
    return make_workdir(inputs, tmp_path_factory.mktemp("work"))


@pytest.fixture(scope="module")
def eager(inputs):
    return eager_logits(inputs)


@pytest.fixture(scope="module")
def chain(workdir) -> Chain:
    return Chain(workdir, Exports(workdir))


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
    np.testing.assert_allclose(written_logits(folder, count), eager_logits, atol=1e-4)  # 6 decimals in TXT, ORT vs original


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
    folder, scored = chain(64, "int8")
    eager_logits, eager_accuracy = eager
    assert scored["num_samples"] == inputs.count
    written = written_logits(folder, len(eager_logits))
    agreement = (written.argmax(1) == eager_logits.argmax(1)).mean()
    if inputs.real:  # the bounds, on the demo checkpoint
        assert abs(scored["accuracy"] - eager_accuracy) <= 0.3 and agreement >= 0.99
    else:  # a random generated checkpoint has near-tied logits; int8 still has to track it
        assert agreement >= 0.9


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
