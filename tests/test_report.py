"""The eval table's performance column: our perf step's figures read as JSON (the wall-clock rate where
requests overlapped, marked *), ais_bench's from the line it prints, and clear errors otherwise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinybert.steps import perf, report
from tinybert.errors import PipelineError
from tinybert.runtimes.runner import throughput_line, wall_clock_line


class FakeRunner:
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
    measured = perf.measure("m.onnx", 2, loop=4, warmup=1, json_out=str(tmp_path / "bs2_perf.json"))
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
