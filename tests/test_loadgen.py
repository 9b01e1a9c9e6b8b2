"""MLPerf LoadGen over a fake runtime whose calls take a fixed time per call and per position (registered as a
registry row, opened by the prepare step as any row): each scenario VALID in a short run, Server INVALID past
capacity with LoadGen's reasons and exit 1, accuracy mode's logits, and the log readers on their own."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from conftest import SHARED_CHECKPOINT, SHARED_COUNT, SHARED_TSV

pytest.importorskip("mlperf_loadgen")

from tinybert import registry  # noqa: E402
from tinybert.errors import DataFormatError  # noqa: E402
from tinybert.registry import CHECKPOINT, Package, Role, RunPath, Runtime  # noqa: E402
from tinybert.runtimes.interface import RuntimeBase  # noqa: E402

FAKE = "fake-timed"
CALL_S, POSITION_S = 0.001, 5e-6  # each call's fixed cost and its cost per position (rows x length)
SHORT = ["--profile", "quick", "--min_duration_ms", "300", "--no_warm", "--latency_ms", "40"]


class TimedRuntime(RuntimeBase):
    """Logits from the ids (as the toy runtime's), after sleeping as a model would compute: two calls in flight."""

    name = FAKE
    batch_size = None
    seq_len = None
    requests = 2
    threads = 2

    def __init__(self, model_path: str, threads: int | None = None):
        self.model_path = model_path

    def run(self, input_ids, segment_ids, input_mask):
        time.sleep(CALL_S + POSITION_S * input_ids.size)
        return fake_logits(input_ids, input_mask)


def fake_logits(input_ids, input_mask) -> np.ndarray:
    score = ((input_ids * input_mask).sum(axis=1) % 7 - 3).astype(np.float32)
    return np.stack([-score, score], axis=1)


RUNTIME = Runtime(name=FAKE, module=__name__, cls="TimedRuntime", title="a timed fake, for LoadGen's tests",
                  package=Package("numpy", "pip install numpy"))
PATH = RunPath(row="Tf", name="fake-timed", title="the timed fake on the checkpoint folder", runtime=FAKE,
               model=CHECKPOINT, role=Role.PEER, cls_only=True)


@pytest.fixture
def fake():
    with registry.registered(RUNTIME, PATH):
        yield


def loadgen(small_inputs, small_features, out, *args):
    from tinybert.cli.main import run

    return run("loadgen", ["--row", "Tf", "--ckpt_dir", str(small_inputs.checkpoint), "--bin_dir",
                           str(small_features), "--model_dir", str(out / "models"), "--out", str(out), *args])


def outcome(path) -> dict:
    return json.loads(path.read_text())["outcomes"]


@pytest.mark.slow  # five LoadGen runs of their minimum duration each
def test_each_scenario_is_valid_and_server_invalid_past_capacity(fake, small_inputs, small_features, tmp_path,
                                                                 capsys):
    """Offline sets the rate; SingleStream, MultiStream valid; Server VALID at half of it, INVALID at 1.5x."""
    figures = {}
    for scenario in ("Offline", "SingleStream", "MultiStream"):
        code = loadgen(small_inputs, small_features, tmp_path, "--scenario", scenario, *SHORT, "--offline_qps",
                       "30000", "--json_out", str(tmp_path / f"{scenario}.json"))
        got = outcome(tmp_path / f"{scenario}.json")[0]
        assert code == 0 and got["valid"] and got["reasons"] == [], got
        detail = open(os.path.join(got["folder"], "mlperf_log_detail.txt"), encoding="utf-8").read()
        assert "error_invalid_config" not in detail  # LoadGen's config read once in this process, then copied
        figures[scenario] = got["figures"]
    assert figures["SingleStream"]["p90_ms"] >= CALL_S * 1000  # every call sleeps at least that long
    assert figures["MultiStream"]["p99_ms"] >= figures["SingleStream"]["p50_ms"]
    rate = figures["Offline"]["samples_per_s"]
    assert rate > 0
    code = loadgen(small_inputs, small_features, tmp_path, "--scenario", "Server", *SHORT, "--qps", f"{rate / 2:.0f}",
                   "--json_out", str(tmp_path / "half.json"))
    half = outcome(tmp_path / "half.json")[0]
    assert code == 0 and half["valid"] and half["figures"]["p99_ms"] <= 40, half
    capsys.readouterr()
    code = loadgen(small_inputs, small_features, tmp_path, "--scenario", "Server", *SHORT, "--qps",
                   f"{rate * 1.5:.0f}", "--json_out", str(tmp_path / "over.json"))
    over = outcome(tmp_path / "over.json")[0]
    printed = capsys.readouterr()
    assert code == 1 and not over["valid"] and over["figures"] == {}, over
    assert "INVALID" in printed.out and "performance constraints not met" in printed.out
    assert "[ERROR] Server: LoadGen judged the run INVALID" in printed.err
    folders = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("loadgen-Server"))
    assert len(folders) == 2  # the second run's folder is new, the first kept


@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream", "Server", "Offline"])
def test_accuracy_mode_logs_every_sample_and_scores_it_as_postprocess(fake, small_inputs, small_features, tmp_path,
                                                                      scenario):
    from tinybert.data.features import load_features
    from tinybert.steps.postprocess import classification_metrics

    code = loadgen(small_inputs, small_features, tmp_path, "--scenario", scenario, "--mode", "accuracy", *SHORT,
                   "--json_out", str(tmp_path / "acc.json"))
    got = outcome(tmp_path / "acc.json")[0]
    features, _ = load_features(str(small_features))
    ids, _, mask = features.batch(slice(None))
    expected = fake_logits(ids, mask)
    assert code == 0 and got["accuracy"]["samples"] == len(ids)
    assert np.array_equal(np.load(os.path.join(got["folder"], "logits.npy")), expected)
    assert got["accuracy"]["accuracy"] == classification_metrics(features.labels, expected.argmax(axis=1))["accuracy"]


@pytest.mark.slow  # two Server runs of their minimum query count each
def test_a_server_sweep_writes_its_table_json_and_plot(fake, small_inputs, small_features, tmp_path):
    code = loadgen(small_inputs, small_features, tmp_path, "--scenario", "Server", *SHORT, "--qps", "600,4000",
                   "--batcher", "nowait")
    sweep = next(tmp_path.glob("loadgen-Server-sweep-*"))
    report = json.loads((sweep / "loadgen.json").read_text())
    assert code == 0 and report["highest_valid_qps"] == 600  # one VALID point: the sweep's answer
    assert [p["valid"] for p in report["points"]] == [True, False]
    table = (sweep / "table.md").read_text()
    assert "| 600 | VALID |" in table and "| 4000 | INVALID | - | - | - |" in table
    assert (sweep / "latency_qps.png").stat().st_size > 1000 and (sweep / "qps-600" / "user.conf").is_file()


# ---------------------------------------------------------------- the readers and the batcher on their own

def _mllog(key, value, error=False) -> str:
    return ":::MLLOG " + json.dumps({"key": key, "value": value, "metadata": {"is_error": error}}) + "\n"


def test_the_detail_log_is_read_as_loadgen_judged_it(tmp_path):
    from tinybert.loadgen.logs import read_detail

    path = tmp_path / "mlperf_log_detail.txt"
    path.write_text("noise\n" + _mllog("effective_scenario", "Server") + _mllog("result_validity", "VALID")
                    + _mllog("result_99.00_percentile_latency_ns", 2500000) + _mllog("early_stopping_met", True))
    detail = read_detail(str(path))
    assert detail.valid and detail.reasons == () and detail.latency_ms("99.00") == 2.5
    path.write_text(_mllog("result_validity", "INVALID") + _mllog("result_min_duration_met", False)
                    + _mllog("early_stopping_met", False) + _mllog("early_stopping_result", " * Not enough queries")
                    + _mllog("result_perf_constraints_met", True))
    detail = read_detail(str(path))
    assert not detail.valid and detail.reasons[0].startswith("min duration not met")
    assert "early stopping: * Not enough queries" in detail.reasons
    path.write_text(_mllog("result_validity", "VALID") + _mllog("error_invalid_config", "Multiple conf files", True))
    assert read_detail(str(path)).reasons == ("error_invalid_config: Multiple conf files",)  # an error line voids it
    path.write_text(_mllog("result_validity", "VALID")[:-5] + "\n")
    with pytest.raises(DataFormatError, match="expected a LoadGen MLLOG record"):
        read_detail(str(path))


def test_the_accuracy_log_gives_every_sample_or_an_error(tmp_path):
    from tinybert.loadgen.logs import read_accuracy_log

    logits = np.random.default_rng(0).standard_normal((SHARED_COUNT, 2)).astype(np.float32)
    entries = [{"seq_id": i, "qsl_idx": int(i), "data": logits[i].tobytes().hex().upper()} for i in range(SHARED_COUNT)]
    path = tmp_path / "mlperf_log_accuracy.json"
    path.write_text(json.dumps(entries[::-1]))
    assert np.array_equal(read_accuracy_log(str(path), SHARED_COUNT), logits)
    path.write_text(json.dumps(entries[:-1]))
    with pytest.raises(DataFormatError, match=f"expected all {SHARED_COUNT} samples, got {SHARED_COUNT - 1} distinct"):
        read_accuracy_log(str(path), SHARED_COUNT)
    path.write_text(json.dumps(entries + [{**entries[3], "data": entries[4]["data"]}]))
    with pytest.raises(DataFormatError, match="expected one result per sample, got different logits for sample 3"):
        read_accuracy_log(str(path), SHARED_COUNT)
    path.write_text(json.dumps(entries[:5] + [{**entries[5], "data": "00ff"}] + entries[6:]))
    with pytest.raises(DataFormatError, match="expected 2 float32 logits .*got 2 bytes for sample 5"):
        read_accuracy_log(str(path), SHARED_COUNT)


def test_the_batcher_fills_a_call_to_the_budget_with_rows_of_like_length_oldest_first_or_waits():
    from types import SimpleNamespace

    from tinybert.loadgen.sut import Batcher, Samples, warm_shapes

    mask = np.zeros((7, 64), dtype=np.int64)
    for row, length in enumerate((10, 20, 30, 40, 8, 64, 18)):
        mask[row, :length] = 1
    features = SimpleNamespace(batch=lambda _: (mask, mask, mask), labels=None)
    samples = Samples(features, model_seq_len=None, bucket_edges="tight")
    batcher = Batcher(samples, max_tokens=16, max_rows=64, wait_s=10.0)
    batcher.put([(0, 0), (4, 4)])  # 2 x 10 would pass 16 tokens: closed at once, no wait
    tick = time.monotonic()
    assert batcher.take() == [(0, 0)] and time.monotonic() - tick < 1.0
    batcher = Batcher(samples, max_tokens=512, max_rows=64, wait_s=0.05)
    batcher.put([(0, 0)])
    tick = time.monotonic()
    assert batcher.take() == [(0, 0)] and time.monotonic() - tick >= 0.05  # all fit: waited for more, then ran
    packed = Batcher(samples, max_tokens=48, max_rows=64, wait_s=0.0)
    packed.put([(1, 1), (3, 3), (6, 6)])  # 40 would pad the call by 20 positions, 18 by 2: the later row joins
    assert packed.take() == [(1, 1), (6, 6)] and packed.take() == [(3, 3)]  # the one left out goes next
    apart = Batcher(samples, max_tokens=512, max_rows=64, wait_s=0.0)
    apart.put([(0, 0), (5, 5), (4, 4)])  # 64 tokens would pad the call by 54 positions: a call of its own
    assert apart.take() == [(0, 0), (4, 4)] and apart.take() == [(5, 5)]
    shared = Batcher(samples, max_tokens=512, max_rows=64, wait_s=0.0)
    shared._idle = 1  # another worker waits for rows: the two like rows go one to each, not both to one call
    shared.put([(0, 0), (4, 4)])
    assert shared.take() == [(0, 0)]
    shared._idle = 0
    backlog = Batcher(samples, max_tokens=512, max_rows=64, wait_s=0.0, workers=2)
    backlog.put([(0, 0), (4, 4)])  # no more rows than workers: one row, the other worker frees soon for the next
    assert backlog.take() == [(0, 0)] and backlog.take() == [(4, 4)]
    backlog.put([(0, 0), (4, 4), (6, 6)])  # a backlog: like rows join (18 tokens would pad them by 16 positions)
    assert backlog.take() == [(0, 0), (4, 4)] and backlog.take() == [(6, 6)]
    alone = Batcher(samples, max_tokens=32, max_rows=64, wait_s=0.0)
    alone.put([(5, 5), (4, 4)])  # a lone row over the budget still runs, alone
    assert alone.take() == [(5, 5)] and alone.take() == [(4, 4)]
    alone.close()
    assert alone.take() is None
    shapes = warm_shapes(samples, "Server", batch_size=64, call_tokens=64, fixed_batch=None)
    assert (3, 20) in shapes and (4, 20) not in shapes and (2, 30) in shapes and (3, 30) not in shapes
    assert (1, 64) in shapes and (2, 64) not in shapes  # each length the samples have, within the budget


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_TSV.is_file() and (SHARED_CHECKPOINT / "pytorch_model.bin").is_file()),
                    reason="needs ../shared (the dev set and the demo checkpoint)")
def test_accuracy_mode_on_the_demo_checkpoint_matches_postprocess_and_infer(inputs, tmp_path, tmp_path_factory):
    """The fast path under LoadGen: the postprocess accuracy over all 872 and infer's logits within 1e-4."""
    from conftest import copy_models, fast_models_of

    from tinybert.cli.main import run
    from tinybert.data.features import preprocess
    from tinybert.results.resultdir import read_logits
    from tinybert.steps.postprocess import sample_stems, score

    bin_dir = tmp_path / "bert_bin"
    models = copy_models(fast_models_of(inputs, tmp_path_factory), tmp_path / "models")  # the run's one export
    manifest = preprocess(str(SHARED_TSV), str(SHARED_CHECKPOINT / "vocab.txt"), str(bin_dir), 64, progress=False)
    common = ["--ckpt_dir", str(SHARED_CHECKPOINT), "--model_dir", str(models)]
    assert run("infer", ["--input", ",".join(str(bin_dir / n) for n in ("input_ids", "segment_ids", "input_mask")),
                         "--output", str(tmp_path / "result"), "--output_dirname", "fast", "--outfmt", "NPY",
                         "--batchsize", "64", "--backend", "onnxruntime", "--ort_model", "fast", "--no_progress",
                         *common]) == 0
    infer_logits = read_logits(str(tmp_path / "result" / "fast"), sample_stems(manifest))
    expected = score(str(tmp_path / "result" / "fast"), str(bin_dir), predictions_out="")["accuracy"]
    assert run("loadgen", ["--scenario", "SingleStream", "--mode", "accuracy", "--backend", "onnxruntime",
                           "--ort_model", "fast", "--bin_dir", str(bin_dir), "--out", str(tmp_path), "--no_warm",
                           "--json_out", str(tmp_path / "acc.json"), *common]) == 0
    got = json.loads((tmp_path / "acc.json").read_text())["outcomes"][0]
    assert got["accuracy"]["samples"] == SHARED_COUNT and got["accuracy"]["accuracy"] == pytest.approx(expected)
    assert np.abs(np.load(os.path.join(got["folder"], "logits.npy")) - infer_logits).max() <= 1e-4


# ---------------------------------------------------------------- the benchmark's SingleStream rows

def test_the_benchmark_report_shows_singlestream_beside_bs1_and_no_figure_when_invalid():
    from tinybert.bench.report import _singlestream_lines

    report = {"results": [{"row": "C", "batch_size": 1, "sentences_per_s": 812.5}],
              "singlestream": [{"row": "C", "valid": True, "reasons": [], "p90_ms": 1.25, "p50_ms": 1.0,
                                "queries": 900},
                               {"row": "D", "valid": False, "reasons": ["min queries not met"], "p90_ms": 0.9,
                                "p50_ms": 0.8, "queries": 10}]}
    lines = _singlestream_lines(report)
    assert "| C | VALID | 1.250 | 1.000 | 900 | 812.5 |" in lines
    assert "| D | INVALID: min queries not met | - | - | - | - |" in lines
    assert _singlestream_lines({"results": []}) == []


@pytest.mark.slow
def test_the_benchmark_runs_loadgen_s_singlestream_on_each_project_row(small_inputs, small_fast_models, tmp_path):
    from conftest import copy_models

    from tinybert.bench.benchmark import BenchmarkRun, Timing, run_benchmark
    from tinybert.loadgen.run import singlestream_figures

    work = copy_models(small_fast_models, tmp_path / "work")  # the run's one export of the fast models
    run = BenchmarkRun(str(small_inputs.checkpoint), str(small_inputs.tsv), str(tmp_path / "out"), (1,), repeats=1,
                       plot=False, rows=("C",), roofline_timing=Timing(0.0, 1, 0.0), work_dir=str(work),
                       latency=singlestream_figures)
    report = run_benchmark(run)
    (single,) = report["singlestream"]  # C only: A is the baseline, not a project path
    assert single["row"] == "C" and single["valid"] and single["p90_ms"] >= single["p50_ms"] > 0, single
    assert single["queries"] >= 64 and os.path.isfile(os.path.join(single["folder"], "mlperf_log_detail.txt"))
    table = next((tmp_path / "out").glob("benchmark-*")).joinpath("benchmark.md").read_text()
    assert "SingleStream (MLPerf LoadGen" in table and f"| C | VALID | {single['p90_ms']:.3f} |" in table


def test_measure_sweeps_each_path_s_offline_fractions_with_both_batchers_and_never_shows_an_invalid_figure(
        small_inputs, small_features, tmp_path, monkeypatch, capsys):
    """loadgen-measure's orchestration, each run's outcome given (its runs are `loadgen` processes, tested above):
    Server swept at fractions of the path's own Offline rate with each batcher; INVALID shows '-', never a figure."""
    from conftest import cli

    from tinybert.loadgen import measure

    ran = []

    def path_of(args):
        return args[args.index("--row" if "--row" in args else "--ort_model") + 1]

    def fake_run(args, json_out, log):
        ran.append(args)
        scenario = args[args.index("--scenario") + 1]
        if scenario == "SingleStream":
            return [{"valid": True, "figures": {"p90_ms": 1.5}}]
        if scenario == "Offline":
            return [{"valid": path_of(args) != "slow", "figures": {"samples_per_s": 1000.0}}]
        qps = [float(q) for q in args[args.index("--qps") + 1].split(",")]
        limit = 600 if args[args.index("--batcher") + 1] == "budget" else 400
        return [{"valid": q <= limit, "target_qps": q, "figures": {}} for q in qps]

    monkeypatch.setattr(measure, "_run", fake_run)
    proc = cli("loadgen-measure", "--paths", "int8,slow,OV8", "--out", tmp_path, "--bin_dir", small_features,
               "--ckpt_dir", small_inputs.checkpoint, "--min_duration_ms", 500, "--no_warm", check=True)
    [folder] = [p for p in tmp_path.iterdir() if p.name.startswith("loadgen-measure-")]
    servers = [a for a in ran if "Server" in a]
    assert [a[a.index("--qps") + 1] for a in servers if path_of(a) == "int8"] == ["200,400,600,800,1000"] * 2
    assert not [a for a in servers if path_of(a) == "slow"]  # no Offline rate: nothing to sweep
    assert {path_of(a) for a in ran if "--row" in a} == {"OV8"}
    assert all("--min_duration_ms" in a and "--no_warm" in a for a in ran)
    table = (folder / "measure.md").read_text()
    assert "| int8 | 1.500 | 1000.0 | 600 | 400 | 0.60 |" in table
    assert "| slow | 1.500 | - | - | - | - |" in table and table in proc.stdout
    saved = json.loads((folder / "measure.json").read_text())
    assert [row["path"] for row in saved["paths"]] == ["int8", "slow", "OV8"]


def test_a_measure_run_that_fails_leaves_no_outcome_and_says_so(tmp_path, capsys):
    from tinybert.loadgen.measure import _run

    with open(tmp_path / "runs.log", "w") as log:
        assert _run(["--scenario", "Nope"], str(tmp_path / "out.json"), log) == []
    assert "[WARN] --scenario Nope: exit 2, no outcome" in capsys.readouterr().out
    assert "invalid choice: 'Nope'" in (tmp_path / "runs.log").read_text()
