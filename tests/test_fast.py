"""The fast path's parts: length bucketing, and a smoke run of the side-by-side benchmark."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

from tinybert.runner import batch_inputs, parse_edges, plan_batches, real_lengths, run_batches, tokens_processed
from tinybert.errors import DataFormatError, UsageError


def _mask(lengths, seq_len=64):
    return (np.arange(seq_len)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)


@pytest.mark.parametrize("edges", [None, (16, 32, 48, 64)])
@pytest.mark.parametrize("batch_size", [1, 3, 8, 64])
def test_every_sample_runs_once_at_a_length_that_holds_it(edges, batch_size):
    lengths = np.random.default_rng(batch_size).integers(2, 65, size=101)
    batches = plan_batches(lengths, batch_size, edges)
    seen = np.concatenate([b.indices for b in batches])
    assert sorted(seen.tolist()) == list(range(101))
    for b in batches:
        assert 1 <= len(b.indices) <= batch_size
        assert b.length >= lengths[b.indices].max()
        if edges is None:
            assert b.length == lengths[b.indices].max()  # tight: no padding beyond the longest
        else:
            assert b.length in edges
            smaller = [e for e in edges if e < b.length]
            assert not smaller or lengths[b.indices].min() > smaller[-1]  # a batch never straddles gears
    assert tokens_processed(batches) < 101 * 64


def test_outputs_return_to_sample_order():
    lengths = np.array([5, 60, 2, 33, 17, 9, 64])
    arrays = [np.arange(7 * 64).reshape(7, 64), np.zeros((7, 64), np.int64), _mask(lengths)]
    # A "model" whose logits reveal which sample and how many positions it saw.
    run = lambda ids, seg, mask: np.stack([ids[:, 0] // 64, mask.sum(1)], axis=1)  # noqa: E731
    logits, times = run_batches(run, arrays, plan_batches(lengths, 3))
    assert logits[:, 0].tolist() == list(range(7)) and logits[:, 1].tolist() == lengths.tolist()
    assert len(times) == 3


def test_static_batches_are_filled_like_ais_bench():
    arrays = [np.arange(5)[:, None].repeat(4, 1)] * 3
    from tinybert.runner import Batch

    filled = batch_inputs(arrays, Batch(np.array([3, 4]), 4), fill_to=4)
    assert filled[0][:, 0].tolist() == [3, 4, 3, 3]


def test_masks_that_are_not_right_padded_are_refused():
    mask = _mask([3, 5])
    mask[1, 1] = 0
    with pytest.raises(DataFormatError, match=r"feats: expected right-padded masks .* sample \[1\]"):
        real_lengths(mask, "feats")
    with pytest.raises(DataFormatError, match="all-zero mask"):
        real_lengths(np.zeros((2, 8), np.int64), "feats")


@pytest.mark.parametrize("text, message", [("16,x,64", "bucket edges such as"), ("32,16,64", "strictly increasing"),
                                           ("16,32", "last bucket edge to be the sequence length 64")])
def test_bucket_edges_are_checked(text, message):
    assert parse_edges("tight", 64) is None and parse_edges("16, 32 64", 64) == (16, 32, 64)
    with pytest.raises(UsageError, match=message):
        parse_edges(text, 64)


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
    assert set("ABCD") <= set(rows) and report["num_samples"] == 37
    assert rows["A"]["max_abs_diff_to_A"] == 0.0
    for key in "BC":
        assert rows[key]["agreement_with_A"] == 1.0 and rows[key]["max_abs_diff_to_A"] <= 1e-4
    assert rows["C"]["tokens"] < rows["A"]["tokens"] == 37 * 64  # bucketing processes fewer positions
    assert rows["B"]["tokens"] == 40 * 64  # the static model's last batch is filled
    assert report["sgemm"]["gflops"] > 0 and all(0 < r["roofline_fraction"] for r in rows.values())
    assert any(c["check"].startswith("D agreement with A") for c in report["checks"])
    assert "GPU rows" in proc.stdout and "| 4 | C |" in (folder / "benchmark.md").read_text()
    assert (folder / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_needs_its_inputs(tmp_path):
    proc = run_cli("benchmark", "--model_dir", tmp_path / "nope", "--data_file", tmp_path / "dev.tsv",
                   "--output", tmp_path / "out", "--batch_sizes", "4", cwd=tmp_path)
    assert_clean_error(proc, "dev.tsv")
    assert_clean_error(run_cli("benchmark", "--batch_sizes", "4 x", cwd=tmp_path), "--batch_sizes", "got 'x'")


@pytest.mark.parametrize("step, names", [
    ("export-fast", ["TinyBERT_dynamic.onnx", "TinyBERT_sim_dynamic.onnx", "TinyBERT_fast.onnx",
                     "TinyBERT_int8.onnx"]),
    ("export", ["TinyBERT_bs2.onnx", "TinyBERT_sim_bs2.onnx"])])
def test_models_that_fail_their_check_are_removed(small_inputs, tmp_path, step, names):
    """A negative tolerance fails every check: nothing may be left that looks like a good model."""
    extra = ["--batch_size", 2] if step == "export" else []
    proc = run_cli(step, "--model_dir", small_inputs.checkpoint, "--output_dir", tmp_path, "--tolerance", "-1",
                   *extra, cwd=tmp_path)
    assert_clean_error(proc, "logits differ from PyTorch", "expected at most -1e+00", "removed")
    assert not [n for n in names if (tmp_path / n).exists()]
