"""The OpenVINO backend's THROUGHPUT path (`run_overlapped`: an AsyncInferQueue with a completion
callback): every result in its position, equal to the synchronous path, thousands of requests with no
hang, and a failed pass that leaves nothing in flight. On a tiny stand-in model whose logits name
their inputs, so a result in the wrong position cannot pass."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from conftest import REPO
from onnx import TensorProto, helper

pytest.importorskip("openvino")

from tinybert.runtimes import open_runtime  # noqa: E402
from tinybert.runtimes.runner import plan_batches, real_lengths, run_batches, run_batches_overlapped  # noqa: E402


def identifying_model(path) -> str:
    """Dynamic [batch, sequence] int64 inputs -> logits [sum(input_ids), sum(input_mask)] per row."""
    dims = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, dims) for n in ("input_ids", "segment_ids", "input_mask")]
    output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])
    nodes = [helper.make_node("ReduceSum", [name, "axis"], [f"{name}_sum"], keepdims=1)
             for name in ("input_ids", "input_mask")]
    nodes += [helper.make_node("Concat", ["input_ids_sum", "input_mask_sum"], ["sums"], axis=1),
              helper.make_node("Cast", ["sums"], ["logits"], to=TensorProto.FLOAT)]
    axis = helper.make_tensor("axis", TensorProto.INT64, [1], [1])
    model = helper.make_model(helper.make_graph(nodes, "identify", inputs, [output], initializer=[axis]),
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))
    return str(path)


def sample_arrays(count: int, seed: int = 0):
    """Right-padded rows of 1-30 tokens, ids unique enough that each row's sum names it."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 31, count)
    mask = (np.arange(32)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(1, 30000, (count, 32)) * mask
    return ids, np.zeros_like(ids), mask


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return identifying_model(tmp_path_factory.mktemp("ov") / "identify.onnx")


def test_overlapped_results_land_in_their_positions_equal_to_the_synchronous_path(model):
    arrays = sample_arrays(300)
    batches = plan_batches(real_lengths(arrays[2]), 3)
    backend = open_runtime("openvino", model, threads=2, hint="THROUGHPUT")
    expected = np.stack([arrays[0].sum(1), arrays[2].sum(1)], axis=1).astype(np.float32)
    synchronous, _ = run_batches(backend.run, arrays, batches)
    for _ in range(2):  # the second pass reuses the queue
        overlapped, _ = run_batches_overlapped(backend, arrays, batches)
        assert np.array_equal(overlapped, synchronous) and np.array_equal(overlapped, expected)


def test_on_output_sees_every_position_once_in_order(model):
    arrays = sample_arrays(50)
    backend = open_runtime("openvino", model, threads=2, hint="THROUGHPUT")
    seen = []
    backend.run_overlapped(([a[i:i + 1, :8] for a in arrays] for i in range(50)), lambda p, out: seen.append((p, out)))
    assert [p for p, _ in seen] == list(range(50))
    assert [int(out[0, 0]) for _, out in seen] == arrays[0][:, :8].sum(1).tolist()


@pytest.mark.parametrize("where", ["inputs", "on_output"])
def test_a_failed_pass_leaves_no_request_in_flight_and_the_next_pass_works(model, where):
    arrays = sample_arrays(40)
    backend = open_runtime("openvino", model, threads=2, hint="THROUGHPUT")

    def inputs():
        for i in range(40):
            if where == "inputs" and i == 25:
                raise ValueError("bad input")
            yield [a[i:i + 1] for a in arrays]

    def on_output(position, out):
        if where == "on_output" and position == 10:
            raise ValueError("bad output")

    with pytest.raises(ValueError, match="bad"):
        backend.run_overlapped(inputs(), on_output)
    assert backend._async_queue is None  # the failed queue is dropped, after waiting for its requests
    results = {}
    backend.run_overlapped(([a[i:i + 1] for a in arrays] for i in range(40)), results.__setitem__)
    assert sorted(results) == list(range(40)) and int(results[39][0, 1]) == arrays[2][39].sum()


def test_an_error_in_the_callback_is_raised_by_the_pass_and_frees_the_queue(model, monkeypatch):
    """OpenVINO keeps an error raised in a callback, with the traceback whose frames hold the queue: a
    cycle through C++ that leaks the queue. The callback keeps it instead; the pass raises it."""
    import gc

    import openvino as ov

    from tinybert.runtimes import openvino as openvino_backend

    arrays = sample_arrays(30)
    backend = open_runtime("openvino", model, threads=2, hint="THROUGHPUT")
    calls = []

    def failing_logits(request):
        calls.append(1)
        if len(calls) == 4:
            raise MemoryError("no room for the logits")
        return np.zeros((1, 2), np.float32)

    monkeypatch.setattr(openvino_backend, "_logits_of", failing_logits)
    for _ in range(3):
        calls.clear()
        with pytest.raises(MemoryError, match="no room"):
            backend.run_overlapped(([a[i:i + 1] for a in arrays] for i in range(30)), lambda p, out: None)
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, ov.AsyncInferQueue)]
    monkeypatch.undo()
    results = {}
    backend.run_overlapped(([a[i:i + 1] for a in arrays] for i in range(30)), results.__setitem__)
    assert sorted(results) == list(range(30)) and int(results[29][0, 0]) == arrays[0][29].sum()


STRESS = """
import sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_openvino_runtime import sample_arrays
from tinybert.runtimes import open_runtime
from tinybert.runtimes.runner import plan_batches, real_lengths, run_batches_overlapped

arrays = sample_arrays(1000, seed=1)
batches = plan_batches(real_lengths(arrays[2]), 1)
expected = np.stack([arrays[0].sum(1), arrays[2].sum(1)], axis=1).astype(np.float32)
for _ in range(3):  # 3000 requests, each backend and queue made anew as the benchmark does per row
    backend = open_runtime("openvino", {model!r}, threads=2, hint="THROUGHPUT")
    logits, _ = run_batches_overlapped(backend, arrays, batches)
    assert np.array_equal(logits, expected)
    del backend
print("OK")
"""


@pytest.mark.slow
def test_thousands_of_requests_through_the_callback_complete_with_no_hang(model):
    code = textwrap.dedent(STRESS.format(tests=str(REPO / "tests"), model=model))
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("3000 requests through AsyncInferQueue with a callback did not finish in 240 s (a hang)")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stdout + proc.stderr
