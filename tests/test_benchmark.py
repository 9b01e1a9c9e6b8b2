"""The side-by-side benchmark: its input checks, its targets and checks on given rows, a row that fails to open;
the whole run is in test_profiles.py."""

from __future__ import annotations

import pytest
from conftest import assert_clean_error, cli


def test_benchmark_needs_its_inputs(small_inputs, tmp_path):
    proc = cli("benchmark", "--model_dir", tmp_path / "nope", "--data_file", tmp_path / "dev.tsv",
               "--output", tmp_path / "out", "--batch_sizes", "4", cwd=tmp_path)
    assert_clean_error(proc, f"{tmp_path / 'dev.tsv'}: expected the SST-2 TSV file", "found no such file", code=2)
    proc = cli("benchmark", "--model_dir", tmp_path / "nope", "--data_file", small_inputs.tsv,
               "--output", tmp_path / "out", "--batch_sizes", "4", cwd=tmp_path)
    assert_clean_error(proc, f"{tmp_path / 'nope' / 'vocab.txt'}: expected the WordPiece vocab.txt", code=2)
    assert not list((tmp_path / "out").glob("*")), "a failed run left a (work or results) folder behind"
    assert_clean_error(cli("benchmark", "--batch_sizes", "4 x", cwd=tmp_path),
                       "--batch_sizes: expected a positive integer, got 'x'", code=2)


def _result(row, speed, precision="fp32", role="project", accuracy=80.0, agreement=1.0, diff=1e-6, own=0.6,
            bs=8, passes=None):
    gate = None if role in ("baseline", "peer") else "exact" if precision == "fp32" else "reduced"
    return {"row": row, "batch_size": bs, "sentences_per_s": speed, "precision": precision, "role": role,
            "gate": gate, "accuracy": accuracy, "agreement_with_A": agreement, "max_abs_diff_to_A": diff,
            "own_fraction": own, "own_recipe": "onnxruntime " + precision, "passes_sentences_per_s": passes or [speed],
            "achieved_gflops": speed / 10, "roofline_fraction": own}


def test_a_row_that_fails_its_gate_never_counts_as_the_fastest_path():
    from tinybert.bench.checks import evaluate_targets

    results = [_result("A", 100, role="baseline"), _result("C", 500),
               _result("D", 900, "int8", agreement=0.98),  # gate failed
               _result("S", 700, "int8", accuracy=79.9, own=0.5), _result("OVt", 450, role="peer"),
               _result("OV8t", 460, "int8", role="peer")]
    checks = {c["check"]: c for c in evaluate_targets(results)}
    assert not checks["D agreement with A at bs8"]["met"]
    assert checks["D agreement with A at bs8"]["cause"].startswith("2.00% of its predictions differ from A's")
    best = checks["fastest gated project row (S) / fastest peer (OV8t) at bs8"]
    assert best["value"] == pytest.approx(700 / 460) and best["met"]
    fp32 = checks["C (project fp32) / fastest fp32 peer (OVt) at bs8"]
    assert fp32["value"] == pytest.approx(500 / 450) and fp32["met"]
    roofline = checks["fastest int8 row (S) at bs8: fraction of its engine's int8 matrix-multiply rate "
                      "(onnxruntime int8)"]
    assert roofline["value"] == 0.5 and not roofline["met"]
    assert "its matrix multiplies take 50% of its pass" in roofline["cause"]
    assert all(c["cause"] == "" for c in checks.values() if c["met"])
    exact = [_result("A", 100, role="baseline"), _result("C", 500, diff=2e-4), _result("OVt", 400, role="peer")]
    checks = {c["check"]: c for c in evaluate_targets(exact)}
    assert not checks["C max abs logit diff to A at bs8 (<= 0.0001)"]["met"]
    assert not any(c.startswith("fastest gated project row") for c in checks)  # C failed: nothing of ours counts


def test_a_project_row_slower_at_a_larger_batch_size_is_flagged():
    from tinybert.bench.checks import evaluate_targets

    results = [_result("D", speed, "int8", bs=bs) for bs, speed in ((1, 700), (8, 1100), (32, 900), (64, 1080))]
    results += [_result("OVt", speed, role="peer", bs=bs) for bs, speed in ((1, 300), (8, 500), (32, 200))]
    results += [_result("Dw", speed, "int8", role="variant", bs=bs) for bs, speed in ((8, 1100), (32, 700))]
    checks = {c["check"]: c for c in evaluate_targets(results)}
    flagged = checks["D: slowest larger batch size (bs32) over its best smaller one (bs8), beyond the passes' spread"]
    assert flagged["value"] == pytest.approx(900 / 1100) and not flagged["met"]
    assert flagged["cause"].startswith("bs32 passes 900-900 sent/s, all below bs8's 1100-1100")
    assert not any(c.startswith(("OVt:", "Dw:")) for c in checks)  # peers and variants are not held to it
    noisy = [_result("C", 1000, bs=8, passes=[900, 1000, 1150]), _result("C", 950, bs=32, passes=[910, 950, 980])]
    (within,) = [c for c in evaluate_targets(noisy) if c["check"].startswith("C: slowest")]
    assert within["value"] == pytest.approx(0.95) and within["met"] and within["cause"] == ""  # within the spread


def test_flops_of_the_cls_only_last_layer():
    from types import SimpleNamespace

    from tinybert.bench.roofline import batch_flops

    config = SimpleNamespace(hidden_size=312, intermediate_size=1200, num_hidden_layers=4)
    assert batch_flops(config, 3, 1, True) == batch_flops(config, 3, 1)  # one token: nothing to prune
    assert 0.75 < batch_flops(config, 3, 25, True) / batch_flops(config, 3, 25) < 0.85  # about a fifth less


def test_int8_matmul_rate_is_measured():
    from tinybert.bench.square_rates import measured_int8_gops

    rate = measured_int8_gops(1, sizes=(64,), trials=1)
    assert rate["gops"] == max(rate["by_library"].values()) > 0 and rate["dot_product"]


def test_fp32_matmul_rate_is_the_best_library_on_the_given_threads():
    import torch

    from tinybert.bench.square_rates import measured_sgemm_gflops

    threads = torch.get_num_threads()
    rate = measured_sgemm_gflops(1, sizes=(64,), trials=1)
    assert rate["gflops"] == max(rate["by_library"].values()) > 0 and rate["threads"] == 1
    assert set(rate["by_library"]) == {"torch.mm", "numpy.matmul", "onnxruntime MatMul"}
    assert torch.get_num_threads() == threads  # torch's pool is the process's: put back


@pytest.mark.slow
def test_a_row_that_fails_to_open_is_skipped_with_the_reason(small_inputs, tmp_path, monkeypatch):
    """A row whose needs are met but whose runtime fails when opened (torchao on an odd CPU, say) is noted
    and dropped; the other rows are still measured."""
    from tinybert.bench import benchmark
    from tinybert.errors import BackendUnavailableError

    opened = benchmark.Models.runtime

    def runtime(self, path, batch_size):
        if path.row == "D":
            raise BackendUnavailableError("D: expected its kernels to compile, got a failure")
        return opened(self, path, batch_size)

    monkeypatch.setattr(benchmark.Models, "runtime", runtime)
    run = benchmark.BenchmarkRun(str(small_inputs.checkpoint), str(small_inputs.tsv), str(tmp_path / "out"), (2, 4),
                                 repeats=1, plot=False, rows=("C", "D"), roofline_timing=benchmark.Timing(0.0, 1, 0.0),
                                 work_dir=str(tmp_path / "work"))
    report = benchmark.run_benchmark(run)
    assert (tmp_path / "work" / "TinyBERT_fast.onnx").is_file()  # a given work_dir keeps what was made, for a rerun
    assert sorted({(r["row"], r["batch_size"]) for r in report["results"]}) == [("A", 2), ("A", 4), ("C", 2), ("C", 4)]
    assert any(note.startswith("row D (") and "skipped from bs2 on: D: expected its kernels" in note
               for note in report["notes"])
