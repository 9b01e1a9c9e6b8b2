"""Batch planning and running: length bucketing, filling a static model's last batch, outputs back in
sample order, and the ais_bench throughput and latency figures."""

from __future__ import annotations

import numpy as np
import pytest

from tinybert.errors import DataFormatError, UsageError
from tinybert.runtimes.runner import (Batch, batch_inputs, batch_shapes, consecutive_batches, in_flight, latency_stats, model_logits,
                             parse_edges, plan, plan_batches, real_lengths, resolve_requests, run_batches, throughput,
                             throughput_line, tokens_processed, wall_clock_line)


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


def test_a_length_past_the_last_edge_is_refused():
    from tinybert.runtimes.runner import bucket_length

    assert bucket_length(17, (16, 32)) == 32 and bucket_length(17, None) == 17
    with pytest.raises(UsageError, match="bucket edges up to at least 40 tokens"):
        bucket_length(40, (16, 32))


def test_static_models_get_the_card_batches_and_dynamic_ones_buckets():
    lengths = np.array([5, 60, 2, 33, 17, 9, 64])
    arrays = [np.zeros((7, 64), np.int64), np.zeros((7, 64), np.int64), _mask(lengths)]
    # A static [4, 64] model: consecutive samples at full length, the last batch filled to 4.
    batches, fill_to = plan(arrays, 4, 64, 4, None, "feats")
    assert [b.indices.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6]] and fill_to == 4
    assert [b.length for b in batches] == [64, 64] and tokens_processed(batches, fill_to) == 2 * 4 * 64
    # A dynamic model: length-sorted, each batch trimmed to its longest sample, nothing filled.
    batches, fill_to = plan(arrays, 4, None, None, "tight", "feats")
    assert fill_to is None and [b.indices.tolist() for b in batches] == [[2, 0, 5, 4], [3, 1, 6]]
    assert [b.length for b in batches] == [17, 64]
    batches, _ = plan(arrays, 4, None, None, "16,32,48,64", "feats")
    assert [(b.indices.tolist(), b.length) for b in batches] == [([2, 0, 5], 16), ([4], 32), ([3], 48), ([1, 6], 64)]
    # "off": a dynamic model run like the card's, full length, no filling.
    batches, fill_to = plan(arrays, 4, None, None, "off", "feats")
    assert fill_to is None and [b.indices.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6]]
    assert [b.length for b in batches] == [b.length for b in consecutive_batches(7, 4, 64)] == [64, 64]


@pytest.mark.parametrize("edges", ["tight", "16,32,48,64", "off"])
def test_perf_s_workload_is_the_full_batches_split_into_calls(edges):
    """perf times full batches only (`full_only`), split as the steps split them; with "off" (the card's
    batches on a dynamic model) nothing is split, and no edge list is parsed."""
    lengths = np.array([5, 60, 2, 33, 17, 9, 64, 40, 12])
    arrays = [np.zeros((9, 64), np.int64), np.zeros((9, 64), np.int64), _mask(lengths)]
    whole, _ = plan(arrays, 4, None, None, edges, "feats")
    full, _ = plan(arrays, 4, None, None, edges, "feats", full_only=True)
    assert [b.indices.tolist() for b in full] == [b.indices.tolist() for b in whole if len(b.indices) == 4]
    calls, _ = plan(arrays, 4, None, None, edges, "feats", call_tokens=40, full_only=True)
    assert sorted(np.concatenate([c.indices for c in calls]).tolist()) == \
        sorted(np.concatenate([b.indices for b in full]).tolist())
    if edges == "off":
        assert [(len(c.indices), c.length) for c in calls] == [(4, 64), (4, 64)]
    else:
        assert all(len(c.indices) == 1 or len(c.indices) * c.length <= 40 for c in calls) and len(calls) > len(full)
    assert batch_shapes(calls) == sorted({(len(c.indices), c.length) for c in calls})


def test_a_plan_with_no_full_batch_keeps_its_first():
    arrays = [np.zeros((3, 64), np.int64), np.zeros((3, 64), np.int64), _mask([3, 9, 5])]
    batches, _ = plan(arrays, 8, None, None, "tight", "feats", full_only=True)
    assert [b.indices.tolist() for b in batches] == [[0, 2, 1]]


def test_throughput_and_latency_are_ais_bench_s_figures():
    assert throughput(8, [2.0, 6.0]) == 2000.0  # 1000 * batchsize / mean ms per batch
    assert throughput_line(8, [2.0, 6.0]) == ("[INFO] throughput 1000*batchsize.mean(8)/NPU_compute_time.mean(4.0): "
                                              "2000.0")
    stats = latency_stats([1.0, 2.0, 3.0, 10.0])
    assert stats == {"min": 1.0, "max": 10.0, "mean": 4.0, "median": 2.5,
                     "percentile(99%)": pytest.approx(9.79), "count": 4}
    assert latency_stats([])["count"] == 0 and latency_stats([])["mean"] == 0.0


def test_nothing_timed_gives_zero_throughput_not_infinity():
    """JSON has no infinity: a summary with no measured time records 0.0 (gear merges use this too)."""
    assert throughput(8, []) == 0.0 and throughput(8, [0.0, 0.0]) == 0.0
    assert throughput_line(8, []).endswith(": 0.0")


class _Recorder:
    """A backend that returns each row's first token id as its logits and records the shapes it saw."""

    requests, threads = 1, 1

    def __init__(self, batch_size=None, seq_len=None):
        self.batch_size, self.seq_len, self.shapes = batch_size, seq_len, []

    def run(self, input_ids, segment_ids, input_mask):
        self.shapes.append(input_ids.shape)
        return np.stack([input_ids[:, 0], -input_ids[:, 0]], axis=1).astype(np.float32)


@pytest.mark.parametrize("backend, bucket_edges, shapes", [
    (_Recorder(batch_size=4, seq_len=64), "tight", [(4, 64), (4, 64)]),  # static: card's batches, last filled
    (_Recorder(), "off", [(4, 64), (3, 64)]),  # dynamic, bucketing off: the card's batches, nothing filled
    (_Recorder(), "tight", [(4, 5), (3, 9)]),  # dynamic: length-sorted, trimmed, last not filled
])
def test_model_logits_run_the_plan_of_the_backend_and_return_sample_order(backend, bucket_edges, shapes):
    lengths = [9, 2, 5, 3, 8, 4, 7]
    ids = np.arange(7)[:, None] + 100 + np.zeros((7, 64), dtype=np.int64)
    mask = _mask(lengths)
    logits = model_logits(backend, (ids, np.zeros_like(ids), mask), 4, bucket_edges)
    assert backend.shapes == shapes
    assert logits[:, 0].tolist() == list(range(100, 107))  # every sample, in sample order


class _Slow(_Recorder):
    """A thread-safe backend whose calls take a while and finish out of order (longer batches first)."""

    def run(self, input_ids, segment_ids, input_mask):
        import time

        time.sleep(0.002 * (10 - input_ids.shape[1] % 10))
        return super().run(input_ids, segment_ids, input_mask)


@pytest.mark.parametrize("requests", [2, 3])
def test_requests_in_flight_give_the_same_outputs_in_the_same_order(requests):
    lengths = np.random.default_rng(requests).integers(2, 65, size=50)
    ids = np.arange(50)[:, None] + 100 + np.zeros((50, 64), dtype=np.int64)
    arrays = (ids, np.zeros_like(ids), _mask(lengths))
    batches = plan_batches(lengths, 4)
    seen = {1: [], requests: []}
    outputs = {count: run_batches(_Slow().run, arrays, batches, on_batch=lambda b, out, c=count: seen[c].append(
        (b.indices.tolist(), out[:, 0].tolist())), requests=count) for count in seen}
    np.testing.assert_array_equal(outputs[requests][0], outputs[1][0])
    assert outputs[requests][0][:, 0].tolist() == list(range(100, 150))
    assert seen[requests] == seen[1]  # on_batch sees the batches in plan order, whatever finished first
    assert len(outputs[requests][1]) == len(batches) and min(outputs[requests][1]) > 0


def test_an_error_in_a_request_stops_the_run_and_is_raised():
    calls = []

    def failing(item):
        calls.append(item)
        if item == 3:
            raise ValueError("request 3 failed")
        return item

    with pytest.raises(ValueError, match="request 3 failed"):
        list(in_flight(failing, range(100), requests=2))
    assert len(calls) < 100  # the queued calls after the failure were not started


@pytest.mark.parametrize("text, threads, expected", [("auto", 2, 2), (None, 4, 4), ("", 1, 1), ("1", 2, 1),
                                                     (3, 2, 3)])
def test_requests_setting(text, threads, expected):
    assert resolve_requests(text, threads) == expected


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5"])
def test_bad_requests_setting_is_refused(text):
    with pytest.raises(UsageError, match=f"expected REQUESTS 'auto' or a positive integer, got '{text}'"):
        resolve_requests(text, 2)


def test_wall_clock_line_says_when_requests_overlap():
    assert wall_clock_line(872, 2.0, 1) == "[INFO] wall clock: 872 samples in 2.000 s = 436.0 samples/s"
    assert "2 requests in flight" in wall_clock_line(872, 2.0, 2)
