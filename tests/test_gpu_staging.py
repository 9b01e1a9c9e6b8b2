"""The CUDA runtime's staging with the GPU faked (issue 40, defect 3): two pinned slots, int32 ids and lengths sent,
the mask and segments built on the device, the next batch gathered while this one runs. The faked device's streams run
their work as late as a GPU may (cuda.LazyStream), so a slot written again before its event completed gives wrong
logits here; how long a real copy or replay takes, and whether they overlap, only a GPU shows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinybert.capabilities import faked
from tinybert.runtimes import cuda, open_runtime
from tinybert.runtimes.runner import batch_inputs, plan, run_batches

H200 = "NVIDIA H200"


@pytest.fixture(scope="module")
def arrays(small_features):
    from tinybert.data.features import load_features

    return load_features(str(small_features))[0].batch(slice(None))


def todays_logits(runtime, arrays, batches) -> np.ndarray:
    """The staging before this change: the batch gathered as int64, its three planes zero-padded to the shape and
    copied as they are, the model run on them (the faked capture runs the model on its static inputs)."""
    logits = np.empty((len(arrays[0]), 2), dtype=np.float32)
    for batch in batches:
        rows, length = runtime.padded_rows(len(batch.indices)), runtime.padded_length(batch.length)
        planes = np.zeros((3, rows, length), dtype=np.int64)
        for plane, array in zip(planes, batch_inputs(arrays, batch)):
            plane[:len(batch.indices), :batch.length] = array
        with torch.inference_mode():
            out = runtime.forward(*torch.from_numpy(planes).unbind(0)).numpy()
        logits[batch.indices] = out[:len(batch.indices)]
    return logits


@pytest.mark.parametrize("precision, edges, segments_given", [
    ("fp32", "tight", False), ("fp16", "tight", False), ("fp32", "off", False), ("fp32", "tight", True)])
def test_the_staged_logits_are_byte_identical_to_todays(small_inputs, arrays, precision, edges, segments_given):
    """Tight (odd row counts, several shapes) and the card's full-length batches; segments that are not all 0 go
    the three-plane way. Bytes compared, not a tolerance."""
    if segments_given:
        arrays = (arrays[0], arrays[2].copy(), arrays[2])
    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint), precision=precision)
        batches, fill_to = plan(arrays, 5, None, None, edges)
        logits, compute_ms = run_batches(runtime.run, arrays, batches, fill_to)
        assert len(batches) >= 4 and len(compute_ms) == len(batches)
        assert all(shape.compact is not segments_given for shape in runtime._shapes.values())
        assert logits.tobytes() == todays_logits(runtime, arrays, batches).tobytes()


def test_the_runner_hands_the_cuda_runtime_the_whole_pass(small_inputs, arrays, monkeypatch):
    """Every step calls run_batches(runtime.run, ...): the CUDA runtime's bound `run` gets the pass staged, and no
    call of `run` per batch (which could not gather ahead)."""
    calls = []
    real = cuda.CudaRuntime.run_calls
    monkeypatch.setattr(cuda.CudaRuntime, "run_calls", lambda self, a, c, o: calls.append(len(c)) or real(self, a, c, o))
    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint))
        batches, _ = plan(arrays, 4, None, None, "tight")
        seen = []
        run_batches(runtime.run, arrays, batches, on_batch=lambda batch, out: seen.append(len(batch.indices)))
    assert calls == [len(batches)] and seen == [len(b.indices) for b in batches]


def test_int32_ids_and_lengths_are_all_that_is_sent(small_inputs, arrays, monkeypatch):
    """Each host-to-device copy is one int32 run of rows x length ids and rows lengths (no mask, no segments, no
    int64): about a sixth of the three int64 planes' bytes."""
    copies = []
    real = cuda._copy
    monkeypatch.setattr(cuda, "_copy", lambda target, source: copies.append(
        (source.dtype, target.dtype, source.numel())) or real(target, source))
    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint))
        batches, _ = plan(arrays, 6, None, None, "tight")
        run_batches(runtime.run, arrays, batches)
    sent = [size for source, target, size in copies if source == target == torch.int32]
    assert len(sent) == 2 * len(batches)  # host to the slot's device copy, then into the shape's static input
    for batch, size in zip(batches, sent[::2]):
        rows, length = runtime.padded_rows(len(batch.indices)), runtime.padded_length(batch.length)
        assert size == rows * length + rows
    assert {(s, t) for s, t, _ in copies} == {(torch.int32, torch.int32)}  # the output's copy is the replay's


def _lazy_run(small_inputs, arrays, monkeypatch, skip=None, eager_copies=False):
    """The staged logits with one of the pipeline's waits left out (`skip`: which event's); `eager_copies`: the copy
    stream runs its work as soon as queued, the compute stream as late as it may."""
    if skip is not None:
        host_wait, wait = cuda.FakedCudaDevice.host_wait, cuda.FakedCudaDevice.wait
        skipped = lambda self, event: getattr(event, "role", None) == skip  # noqa: E731
        monkeypatch.setattr(cuda.FakedCudaDevice, "host_wait",
                            lambda self, event: None if skipped(self, event) else host_wait(self, event))
        monkeypatch.setattr(cuda.FakedCudaDevice, "wait",
                            lambda self, s, event: None if skipped(self, event) else wait(self, s, event))
        real_slot = cuda._Slot.__init__

        def named(slot, *args):
            real_slot(slot, *args)
            for role in ("copied", "consumed", "done"):
                getattr(slot, role).role = role
        monkeypatch.setattr(cuda._Slot, "__init__", named)
    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint))
        runtime._copies.eager = eager_copies
        batches, _ = plan(arrays, 3, None, None, "tight")
        logits, _ = run_batches(runtime.run, arrays, batches)
        return logits, todays_logits(runtime, arrays, batches)


@pytest.mark.parametrize("skip", ["copied", "consumed", "done"])
def test_a_slot_written_before_its_event_completed_gives_wrong_logits(small_inputs, arrays, monkeypatch, skip):
    """The ordering has teeth on the faked device: each event's wait left out (the pinned input gathered over before
    its copy ran; the device copy overwritten before it moved on; the output read before it landed) changes logits."""
    try:
        logits, expected = _lazy_run(small_inputs, arrays, monkeypatch, skip, eager_copies=skip == "consumed")
    except IndexError:  # another batch's lengths read as ids: past the vocabulary, as wrong as it gets
        return
    assert logits.tobytes() != expected.tobytes()


@pytest.mark.parametrize("eager_copies", [False, True])
def test_with_every_wait_the_lazy_streams_give_todays_logits(small_inputs, arrays, monkeypatch, eager_copies):
    logits, expected = _lazy_run(small_inputs, arrays, monkeypatch, eager_copies=eager_copies)
    assert logits.tobytes() == expected.tobytes()


def test_the_next_batch_is_gathered_while_this_one_runs(small_inputs, arrays, monkeypatch):
    """Batch n+1 is gathered and its copy queued before batch n's logits are read, and never more than the two slots'
    batches are in flight: the order of gathers and reads, and what the streams held at each gather."""
    order, queued = [], []
    real_gather, real_deliver = cuda._Slot.gather, cuda.CudaRuntime._deliver

    def gather(slot, shape, *args):
        order.append("gather")
        return real_gather(slot, shape, *args)

    def deliver(self, position, *args):
        order.append(f"read {position}")
        queued.append(sum(len(s.queue) for s in self.device._streams))
        return real_deliver(self, position, *args)

    monkeypatch.setattr(cuda._Slot, "gather", gather)
    monkeypatch.setattr(cuda.CudaRuntime, "_deliver", deliver)
    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint))
        batches, _ = plan(arrays, 4, None, None, "tight")
        run_batches(runtime.run, arrays, batches)
    count = len(batches)
    assert count >= 4
    assert order[:3] == ["gather", "gather", "gather"] and order[3] == "read 0"
    for n in range(count - 2):  # batch n+2 gathered before batch n is read: two in flight, never three
        assert order.index(f"read {n}") == 3 + 2 * n and order[2 + 2 * n] == "gather"
    assert order[-2:] == [f"read {count - 2}", f"read {count - 1}"]
    assert queued[0] > 0  # the later batches' copies and replay still queued when the first is read


def test_the_graph_takes_the_int32_buffer_and_builds_the_models_inputs_inside(small_inputs, monkeypatch):
    """What is captured reads the shape's one static int32 buffer: widening the ids and building the mask and
    segments are the graph's own first kernels, so a replay needs only that buffer copied in."""
    captured = []
    real = cuda.FakedCudaDevice.capture
    monkeypatch.setattr(cuda.FakedCudaDevice, "capture", lambda self, forward, inputs: captured.append(
        [(tuple(x.shape), x.dtype) for x in inputs]) or real(self, forward, inputs))
    with faked(gpu=H200):
        runtime = open_runtime("pytorch-cuda", str(small_inputs.checkpoint))
        runtime.warm_up([(4, 16)])
    assert captured == [[((4 * 16 + 4,), torch.int32)]]


def test_the_real_devices_stream_and_event_calls(monkeypatch):
    """CudaDevice's staging calls with torch.cuda's stand-ins: work runs under its stream, a stream waits on the event
    (cudaStreamWaitEvent), the host on the event itself; a real GPU's timing only a GPU shows."""
    import contextlib

    from tinybert.capabilities import Gpu

    log = []

    class Stream:
        def __init__(self, *args):
            self.name = f"stream{len(log)}"

        def wait_event(self, event):
            log.append(("wait", self.name, event.name))

    class Event:
        name = "copied"

        def record(self, stream):
            log.append(("record", self.name, stream.name))

        def synchronize(self):
            log.append(("host waits", self.name))

    @contextlib.contextmanager
    def on(stream):
        log.append(("enter", stream.name))
        yield
        log.append(("leave", stream.name))

    for name, value in {"set_device": lambda device: None, "graph_pool_handle": lambda: "pool", "Stream": Stream,
                        "Event": Event, "stream": on, "current_stream": lambda device=None: Stream()}.items():
        monkeypatch.setattr(torch.cuda, name, value)
    device = cuda.CudaDevice(Gpu(0, H200, (9, 0)))
    copies, event = device.stream(), device.event()
    device.enqueue(copies, lambda: log.append("copy"))
    device.record(event, copies)
    device.wait(device.current(), event)
    device.host_wait(event)
    assert log == [("enter", "stream0"), "copy", ("leave", "stream0"), ("record", "copied", "stream0"),
                   ("wait", "stream4", "copied"), ("host waits", "copied")]
