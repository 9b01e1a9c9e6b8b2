"""The side-by-side benchmark: a smoke run of its code path, and its input checks."""

from __future__ import annotations

import json

import pytest
from conftest import SMALL_COUNT, assert_clean_error, run_cli


@pytest.mark.slow
def test_benchmark_smoke(small_inputs, tmp_path):
    """The benchmark's code path at one small batch size on the generated checkpoint (not its speed)."""
    proc = run_cli("benchmark", "--model_dir", small_inputs.checkpoint, "--data_file", small_inputs.tsv,
                   "--output", tmp_path, "--batch_sizes", "4", "--repeats", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("benchmark-")]
    assert sorted(p.name for p in folder.iterdir()) == ["benchmark.json", "benchmark.md", "benchmark.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # scratch models removed
    report = json.loads((folder / "benchmark.json").read_text())
    rows = {r["row"]: r for r in report["results"]}
    assert set("ABCD") <= set(rows) and report["num_samples"] == SMALL_COUNT == 37
    assert rows["A"]["max_abs_diff_to_A"] == 0.0
    for key in "BC":
        assert rows[key]["agreement_with_A"] == 1.0 and rows[key]["max_abs_diff_to_A"] <= 1e-4
    assert rows["C"]["tokens"] < rows["A"]["tokens"] == 37 * 64  # bucketing processes fewer positions
    assert rows["B"]["tokens"] == 40 * 64  # the static model's last batch is filled
    assert report["sgemm"]["gflops"] > 0 and all(0 < r["roofline_fraction"] for r in rows.values())
    assert any(c["check"].startswith("D agreement with A") for c in report["checks"])
    assert "GPU rows" in proc.stdout and "| 4 | C |" in (folder / "benchmark.md").read_text()
    assert (folder / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_needs_its_inputs(small_inputs, tmp_path):
    proc = run_cli("benchmark", "--model_dir", tmp_path / "nope", "--data_file", tmp_path / "dev.tsv",
                   "--output", tmp_path / "out", "--batch_sizes", "4", cwd=tmp_path)
    assert_clean_error(proc, f"{tmp_path / 'dev.tsv'}: expected the SST-2 TSV file", "found no such file", code=2)
    proc = run_cli("benchmark", "--model_dir", tmp_path / "nope", "--data_file", small_inputs.tsv,
                   "--output", tmp_path / "out", "--batch_sizes", "4", cwd=tmp_path)
    assert_clean_error(proc, f"{tmp_path / 'nope' / 'vocab.txt'}: expected the WordPiece vocab.txt", code=2)
    assert not list((tmp_path / "out").glob("*")), "a failed run left a (work or results) folder behind"
    assert_clean_error(run_cli("benchmark", "--batch_sizes", "4 x", cwd=tmp_path),
                       "--batch_sizes: expected a positive integer, got 'x'", code=2)
