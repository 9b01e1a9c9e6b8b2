"""The eval table's performance column: our perf step's figures read as JSON (the wall-clock rate where
requests overlapped, marked *; the median of its repeats, their spread, inversions beyond it flagged),
ais_bench's from the line it prints, and clear errors otherwise."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tinybert.steps import perf, report
from tinybert.errors import PipelineError
from tinybert.runtimes.interface import RuntimeBase
from tinybert.runtimes.runner import throughput_line, wall_clock_line


class FakeRunner(RuntimeBase):
    """A backend stand-in with a fixed sequence length and `requests` calls in flight."""

    batch_size, seq_len = None, 8

    def __init__(self, requests):
        self.requests = requests

    def run(self, input_ids, segment_ids, input_mask):
        return np.zeros((len(input_ids), 2), dtype=np.float32)


def write_perf(eval_dir, bs, requests, throughput, wall_clock):
    """`bs<bs>_perf.json` with the keys `tinybert perf --json_out` writes (the test below holds it to them)."""
    (eval_dir / f"bs{bs}_perf.json").write_text(json.dumps(
        {"batch_size": bs, "requests_in_flight": requests, "throughput": throughput,
         "wall_clock_samples_per_s": wall_clock}))


@pytest.mark.parametrize("requests", [1, 3])
def test_the_figures_tinybert_perf_writes_are_read(tmp_path, monkeypatch, requests):
    monkeypatch.setattr(perf, "open_runtime", lambda *a, **k: FakeRunner(requests))
    measured = perf.measure("m.onnx", 2, loop=4, warmup=1, json_out=str(tmp_path / "bs2_perf.json"), repeats=2,
                            min_seconds=0)
    figure = measured["wall_clock_samples_per_s"] if requests > 1 else measured["throughput"]
    assert report.read_perf(str(tmp_path), 2, "onnxruntime (fast)") == (pytest.approx(figure), requests)


def test_serial_figures_are_ais_bench_s_formula(tmp_path):
    write_perf(tmp_path, 2, 1, throughput=500.0, wall_clock=450.0)
    assert report.read_perf(str(tmp_path), 2, "onnxruntime (fast)") == (500.0, 1)


def test_overlapped_figures_are_the_wall_clock_rate(tmp_path):
    # per-call times overlap: 1000 * bs / mean call time understates what the pass achieved
    write_perf(tmp_path, 2, 3, throughput=500.0, wall_clock=1200.0)
    assert report.read_perf(str(tmp_path), 2, "onnxruntime (fast)") == (1200.0, 3)


def test_ais_bench_s_printed_line_is_read_from_its_log(tmp_path):
    # ais_bench writes no JSON: its own line is all there is (the last one counts).
    (tmp_path / "bs8_perf.log").write_text("[INFO] backend: ais_bench\n" + throughput_line(8, [40.0]) + "\n"
                                           + throughput_line(8, [10.0, 10.0]) + "\n[INFO] done\n")
    assert report.read_perf(str(tmp_path), 8, "ais_bench") == (800.0, 1)
    (tmp_path / "bs8_perf.log").write_text("[INFO] backend: ais_bench\n[ERROR] device busy\n")
    with pytest.raises(PipelineError, match="bs8_perf.log: expected ais_bench's '.*' line, found none"):
        report.read_perf(str(tmp_path), 8, "ais_bench")
    with pytest.raises(PipelineError, match="bs4_perf.log: expected the log of test/perf.sh, found no such file"):
        report.read_perf(str(tmp_path), 4, "ais_bench")


def test_our_perf_step_s_printed_lines_are_not_read_back(tmp_path):
    # The runner prints ais_bench's line too, but where requests overlap it understates the rate: without
    # the JSON there is no figure, rather than the wrong one.
    (tmp_path / "bs8_perf.log").write_text(throughput_line(8, [20.0]) + "\n" + wall_clock_line(800, 1.25, 2) + "\n")
    with pytest.raises(PipelineError, match="bs8_perf.json: expected the figures test/perf.sh wrote with --json_out, "
                                            "found no such file"):
        report.read_perf(str(tmp_path), 8, "onnxruntime (fast)")


@pytest.mark.parametrize("record, fragment", [
    ({"throughput": 10.0}, "a positive 'requests_in_flight', got None"),
    ({"requests_in_flight": 2, "throughput": 10.0}, "a number under 'wall_clock_samples_per_s', got None"),
    ({"requests_in_flight": 1, "throughput": "fast"}, "a number under 'throughput', got 'fast'"),
])
def test_damaged_figures_are_named(tmp_path, record, fragment):
    (tmp_path / "bs1_perf.json").write_text(json.dumps(record))
    with pytest.raises(PipelineError) as info:
        report.read_perf(str(tmp_path), 1, "onnxruntime (fast)")
    assert str(info.value).startswith(f"{tmp_path / 'bs1_perf.json'}: expected the figures of 'tinybert perf")
    assert fragment in str(info.value)


def test_the_table_marks_the_overlapped_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "describe_machine", lambda: {"cpu": "test cpu", "physical_cores": 2, "logical_cpus": 2,
                                                             "python": "3", "packages": {}})
    monkeypatch.setattr(report, "_matmul_rates", lambda threads, ort_model, sizes: {"onnxruntime fp32": {
        "skipped": f"stand-in for {ort_model} at {sizes}"}})
    write_perf(tmp_path, 1, 1, throughput=300.0, wall_clock=280.0)
    write_perf(tmp_path, 4, 2, throughput=500.0, wall_clock=900.0)
    for bs in (1, 4):
        (tmp_path / f"bs{bs}_accuracy.json").write_text(json.dumps(
            {"accuracy": 90.0 + bs, "num_samples": 37, "result_dir": f"r{bs}"}))
    table = report.build_table(str(tmp_path), [1, 4], "onnxruntime (fast)", "ckpt")
    rows = {line.split("|")[1].strip(): line.split("|")[5].strip() for line in table.splitlines()
            if line.startswith("| TinyBERT")}
    assert rows == {"TinyBERT (bs1)": "300.00", "TinyBERT (bs4)": "900.00*"}
    assert "| 最优bs (bs4) | - | 94.00 | 37 | 900.00 |" in table
    recorded = json.loads((tmp_path / "table.json").read_text())["rows"]
    assert [(r["batch_size"], r["requests_in_flight"]) for r in recorded] == [(1, 1), (4, 2)]


class FakeClock:
    """perf_counter for the runner and perf: only the fake runtime's calls advance it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class TimedRunner(FakeRunner):
    """Each call takes the next of `call_ms` on the fake clock (the last one repeats)."""

    def __init__(self, clock, call_ms):
        super().__init__(1)
        self.clock, self.call_ms = clock, list(call_ms)

    def run(self, input_ids, segment_ids, input_mask):
        self.clock.now += (self.call_ms.pop(0) if len(self.call_ms) > 1 else self.call_ms[0]) / 1000.0
        return super().run(input_ids, segment_ids, input_mask)


@pytest.fixture
def clock(monkeypatch):
    import time

    fake = FakeClock()
    monkeypatch.setattr(time, "perf_counter", fake)
    return fake


def test_perf_reports_the_median_and_spread_of_its_repeats(tmp_path, monkeypatch, clock):
    # Three repeats of four calls each at 10, 20 and 5 ms a call: bs 2 gives 200, 100 and 400 sentences/s.
    runner = TimedRunner(clock, [10] * 4 + [20] * 4 + [5] * 4)
    monkeypatch.setattr(perf, "open_runtime", lambda *a, **k: runner)
    measured = perf.measure("m.onnx", 2, loop=4, warmup=0, repeats=3, min_seconds=0, progress=False,
                            json_out=str(tmp_path / "bs2_perf.json"))
    assert [r["iterations"] for r in measured["repeats"]] == [4, 4, 4]
    assert [r["throughput"] for r in measured["repeats"]] == pytest.approx([200.0, 100.0, 400.0])
    assert measured["throughput"] == pytest.approx(200.0) and measured["wall_clock_samples_per_s"] == pytest.approx(200.0)
    assert measured["spread"]["throughput"] == pytest.approx([100.0, 400.0])
    assert measured["spread"]["wall_clock_samples_per_s"] == pytest.approx([100.0, 400.0])
    assert measured["NPU_compute_time"]["count"] == 12 and measured["loop"] == 4  # keys other code reads stay
    figures = report.read_perf_figures(str(tmp_path), 2, "onnxruntime (fast)")
    assert (figures.fps, figures.spread) == (pytest.approx(200.0), pytest.approx((100.0, 400.0)))
    assert figures.cell() == "200 (100–400)"


def test_each_repeat_runs_whole_passes_until_loop_and_seconds_are_done(monkeypatch, clock, capsys):
    runner = TimedRunner(clock, [10])
    monkeypatch.setattr(perf, "open_runtime", lambda *a, **k: runner)
    measured = perf.measure("m.onnx", 2, loop=3, warmup=0, repeats=2, min_seconds=0.1, progress=False)
    for repeat in measured["repeats"]:
        assert repeat["iterations"] >= 10 and repeat["seconds"] >= 0.1  # 0.1 s at 10 ms a call
    assert perf.measure("m.onnx", 2, loop=30, warmup=0, repeats=1, min_seconds=0.1,
                        progress=False)["repeats"][0]["iterations"] == 30  # LOOP beyond the seconds
    out = capsys.readouterr().out
    assert re.search(r"\[INFO\] throughput 1000\*batchsize\.mean\(2\)/NPU_compute_time\.mean\([\d.]+\): 200\.00 "
                     r"\(median of 2 repeat\(s\) of >= 3 calls and >= 0\.1 s; min-max 200\.00-200\.00\)", out)
    assert "[INFO] repeat 2/2: " in out


def test_perf_refuses_impossible_repeats(monkeypatch):
    from tinybert.errors import UsageError

    monkeypatch.setattr(perf, "open_runtime", lambda *a, **k: FakeRunner(1))
    with pytest.raises(UsageError, match="expected a positive number of repeats \\(PERF_REPEATS\\), got 0"):
        perf.measure("m.onnx", 2, loop=1, repeats=0)
    with pytest.raises(UsageError, match="expected non-negative seconds per repeat \\(PERF_SECONDS\\), got -1"):
        perf.measure("m.onnx", 2, loop=1, min_seconds=-1)


def _write_spread(eval_dir, bs, fps, low, high):
    (eval_dir / f"bs{bs}_perf.json").write_text(json.dumps(
        {"batch_size": bs, "requests_in_flight": 1, "throughput": fps, "wall_clock_samples_per_s": fps,
         "spread": {"throughput": [low, high], "wall_clock_samples_per_s": [low, high]}}))
    (eval_dir / f"bs{bs}_accuracy.json").write_text(json.dumps({"accuracy": 90.0, "num_samples": 37,
                                                                "result_dir": f"r{bs}"}))


@pytest.fixture
def no_machine(monkeypatch):
    monkeypatch.setattr(report, "describe_machine", lambda: {"cpu": "test cpu", "physical_cores": 2, "logical_cpus": 2,
                                                             "python": "3", "packages": {}})
    monkeypatch.setattr(report, "_matmul_rates", lambda threads, ort_model, sizes: {"onnxruntime fp32": {
        "skipped": f"stand-in for {ort_model} at {sizes}"}})


def test_the_table_shows_the_spread_and_flags_inversions_beyond_it(tmp_path, no_machine):
    _write_spread(tmp_path, 1, 500.0, 480.0, 520.0)
    _write_spread(tmp_path, 8, 1105.0, 1050.0, 1160.0)
    _write_spread(tmp_path, 16, 900.0, 850.0, 1000.0)  # slower than bs8, beyond the spread
    _write_spread(tmp_path, 32, 1080.0, 1010.0, 1120.0)  # slower than bs8, within it
    table = report.build_table(str(tmp_path), [1, 8, 16, 32], "onnxruntime (fast)", "ckpt")
    assert "| TinyBERT (bs8) | - | 90.00 | 37 | 1,105 (1,050–1,160) |" in table
    assert "| 最优bs (bs8) | - | 90.00 | 37 | 1,105 (1,050–1,160) |" in table
    flagged = [line for line in table.splitlines() if "beyond the spread" in line]
    assert flagged == ["注意: bs16 is slower than bs8 (1,050–1,160) beyond the spread of the repeats: 850–1,000 fps."]
    assert json.loads((tmp_path / "table.json").read_text())["inversions"] == flagged
    _write_spread(tmp_path, 16, 1000.0, 950.0, 1050.0)  # now the ranges overlap: not flagged
    assert "beyond the spread" not in report.build_table(str(tmp_path), [1, 8, 16, 32], "onnxruntime (fast)", "ckpt")


def test_the_table_says_which_path_auto_timed(tmp_path, no_machine):
    _write_spread(tmp_path, 1, 500.0, 480.0, 520.0)
    record = json.loads((tmp_path / "bs1_perf.json").read_text())
    record["ort_model"] = {"requested": "auto", "path": "int8", "reason": "gate passed on AVX2 at export"}
    (tmp_path / "bs1_perf.json").write_text(json.dumps(record))
    table = report.build_table(str(tmp_path), [1], "onnxruntime (auto)", "ckpt", "auto", accuracy_ort_model="fast")
    assert "ORT_MODEL=auto: 性能列 (speed) ran int8 (gate passed on AVX2 at export); 精度列 (accuracy) ran fast." in table
    saved = json.loads((tmp_path / "table.json").read_text())
    assert saved["speed_ort_model"] == [record["ort_model"]] and saved["rows"][0]["ort_model"] == record["ort_model"]
