"""The PyTorch peer backend (`pytorch-peer`): eager and `torch.compile` (frozen weights, dynamic
shapes, torch's compile modes), fp32, bf16 autocast and torchao int8, the last layer at [CLS] only,
and compilation kept out of the pass time. On the generated small checkpoint; bf16 runs on any CPU
(emulated where there is no native bf16: the benchmark decides whether to show it, the class runs
when asked)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import input_dirs

from tinybert import capabilities
from tinybert.runtimes import open_runtime
from tinybert.runtimes.needs import unmet
from tinybert.runtimes.route import open_path
from tinybert.runtimes.torch_peer import TorchPeerRuntime, graphs_compiled
from tinybert.errors import BackendUnavailableError, UsageError
from tinybert.data.features import load_features
from tinybert.runtimes.runner import batch_shapes, plan_batches, real_lengths, run_batches

TOLERANCE = 1e-4  # compiled fp32 vs eager fp32: float rounding of fused kernels only
BF16_BOUND = 0.15  # bf16 vs fp32 on the small model, whose logits reach about 2: bf16 rounding
INT8_BOUND = 0.3  # torchao int8 vs fp32 on the small model: int8 rounding of every linear layer's weights and inputs
CLEAR = 2 * BF16_BOUND  # a margin between the two logits that bf16 rounding cannot flip
ONE_BATCH = 37  # every sample of the small set in one batch: one compiled graph


@pytest.fixture(scope="module")
def data(small_features):
    features, _ = load_features(str(small_features))
    arrays = features.batch(slice(None))
    assert len(input_dirs(small_features)) == 3
    return arrays, real_lengths(arrays[2])


def logits_of(backend, data, batch_size=4):
    arrays, lengths = data
    return run_batches(backend.run, arrays, plan_batches(lengths, batch_size))[0]


@pytest.fixture(scope="module")
def eager_fp32(small_inputs):
    return TorchPeerRuntime(str(small_inputs.checkpoint), threads=1)


def test_eager_fp32_is_the_reference_path_exactly(small_inputs, data, eager_fp32):
    reference = open_runtime("pytorch", str(small_inputs.checkpoint), threads=1)
    assert np.array_equal(logits_of(eager_fp32, data), logits_of(reference, data))
    assert eager_fp32.compile_seconds == 0.0 and eager_fp32.warm_up([(4, 9), (1, 3)]) == 0.0
    assert (eager_fp32.name, eager_fp32.requests, eager_fp32.batch_size, eager_fp32.seq_len) == \
        ("pytorch-peer", 1, None, None)


@pytest.mark.parametrize("batch_size", [1, 4, 37])
def test_cls_only_gives_the_full_model_s_logits(small_inputs, data, eager_fp32, batch_size):
    cls_only = open_runtime("pytorch-peer", str(small_inputs.checkpoint), threads=1, cls_only=True)
    assert cls_only.cls_only and cls_only.model.bert.cls_only_last_layer
    difference = np.abs(logits_of(cls_only, data, batch_size) - logits_of(eager_fp32, data, batch_size)).max()
    assert difference <= 1e-5
    assert not eager_fp32.model.bert.cls_only_last_layer  # the switch is per model


def test_bf16_autocast_runs_here_and_agrees_with_fp32(small_inputs, data, eager_fp32):
    bf16 = TorchPeerRuntime(str(small_inputs.checkpoint), threads=1, precision="bf16", cls_only=True)
    out, reference = logits_of(bf16, data), logits_of(eager_fp32, data)
    assert out.dtype == np.float32 and 1e-3 < np.abs(out - reference).max() < BF16_BOUND  # bf16, not fp32
    clear = np.abs(reference[:, 0] - reference[:, 1]) > CLEAR
    assert clear.sum() >= 10 and (out.argmax(1) == reference.argmax(1))[clear].all()


@pytest.mark.parametrize("options, message", [
    ({"precision": "fp16"}, "expected precision fp32 or bf16, got 'fp16'"),
    ({"compile": True, "compile_mode": "fastest"}, "expected compile_mode None or 'default', 'reduce-overhead', "
                                                   "'max-autotune', 'max-autotune-no-cudagraphs' .*got 'fastest'"),
    ({"compile_mode": "max-autotune"}, "compile_mode 'max-autotune': expected compile=True, got compile=False"),
    ({"quantize": "int4"}, "expected quantize None or 'int8', got 'int4'"),
    ({"quantize": "int8", "precision": "bf16"}, "quantize 'int8': expected precision 'fp32' .*got 'bf16'"),
])
def test_options_are_checked(small_inputs, options, message):
    with pytest.raises(UsageError, match=message):
        open_runtime("pytorch-peer", str(small_inputs.checkpoint), **options)


def test_the_compile_mode_reaches_torch_compile(small_inputs, monkeypatch):
    """PTcbm asks torch.compile for max-autotune and PTcb for torch's default (recorded, not compiled: minutes)."""
    asked = []
    monkeypatch.setattr(torch, "compile", lambda function, **options: asked.append(options) or function)
    from tinybert.bench.rows import row

    for name in ("PTcbm", "PTcb"):
        backend = open_path(row(name), threads=1, ckpt_dir=str(small_inputs.checkpoint))
        assert backend.compile and backend.precision == "bf16" and backend.cls_only
    assert asked == [{"dynamic": True, "mode": "max-autotune"}, {"dynamic": True, "mode": None}]
    assert backend.compile_mode is None and backend.warm_up([(4, 9)]) == 0.0  # nothing compiled


def test_torchao_int8_agrees_with_fp32(small_inputs, data, eager_fp32):
    pytest.importorskip("torchao")
    int8 = TorchPeerRuntime(str(small_inputs.checkpoint), threads=1, quantize="int8", cls_only=True)
    assert type(int8.model.classifier.weight).__name__ == "Int8Tensor" and int8.quantize == "int8"
    out, reference = logits_of(int8, data), logits_of(eager_fp32, data)
    assert out.dtype == np.float32 and 1e-4 < np.abs(out - reference).max() < INT8_BOUND  # int8, not fp32
    clear = np.abs(reference[:, 0] - reference[:, 1]) > 2 * INT8_BOUND
    assert clear.sum() >= 10 and (out.argmax(1) == reference.argmax(1))[clear].all()


def test_without_torchao_the_int8_row_is_skipped_with_the_install_hint(small_inputs):
    from tinybert.bench.benchmark import BenchmarkRun, select_rows

    run = BenchmarkRun(str(small_inputs.checkpoint), str(small_inputs.tsv), rows=("PTq8",))
    with capabilities.faked(without=("torchao",)):
        assert unmet("torchao") == \
            "torchao is not installed (treated as not installed here): pip install torchao (see requirements.txt)"
        rows, notes = select_rows(run)
        with pytest.raises(BackendUnavailableError, match="torchao: expected it installed.*pip install torchao"):
            open_runtime("pytorch-peer", str(small_inputs.checkpoint), quantize="int8")
    assert [r.row for r in rows] == ["A"]
    assert len(notes) == 1 and notes[0].startswith("row PTq8 (") and "skipped: torchao is not installed" in notes[0]


def test_batch_shapes_are_the_distinct_shapes_of_a_plan(data):
    _, lengths = data
    batches = plan_batches(lengths, 8)
    shapes = batch_shapes(batches)
    assert shapes == sorted(set(shapes)) and {(len(b.indices), b.length) for b in batches} == set(shapes)


# ---------------------------------------------------------------- compiled (Inductor; seconds each)

@pytest.fixture(scope="module")
def compiled_fp32(small_inputs, data):
    """Compiled fp32, [CLS] only, warmed up on the bs-4 plan and on bs 1."""
    backend = TorchPeerRuntime(str(small_inputs.checkpoint), threads=1, compile=True, cls_only=True)
    _, lengths = data
    backend.warm_up(batch_shapes(plan_batches(lengths, 4)) + batch_shapes(plan_batches(lengths, 1)))
    return backend


@pytest.mark.slow
def test_compiled_fp32_equals_eager_and_compiles_only_in_warm_up(data, eager_fp32, compiled_fp32):
    # Dynamic shapes: one graph for every batch of 2 or more, one for batch size 1 (specialised;
    # the bs-4 plan of 37 samples has a batch of 1 too).
    assert compiled_fp32.compiling_calls == 2 and compiled_fp32.compile_seconds > 0
    seconds, graphs = compiled_fp32.compile_seconds, graphs_compiled()
    for batch_size in (4, 1):
        out = logits_of(compiled_fp32, data, batch_size)
        assert np.abs(out - logits_of(eager_fp32, data, batch_size)).max() <= TOLERANCE
    assert (compiled_fp32.compile_seconds, compiled_fp32.compiling_calls, graphs_compiled()) == (seconds, 2, graphs)


@pytest.mark.slow
def test_compiled_weights_are_frozen_and_each_model_gets_its_own_graph(small_inputs, data, compiled_fp32):
    before = logits_of(compiled_fp32, data)
    with torch.no_grad():
        compiled_fp32.model.classifier.bias += 1.0  # after freezing: not seen by the compiled graph
    try:
        assert np.array_equal(logits_of(compiled_fp32, data), before)
    finally:
        with torch.no_grad():
            compiled_fp32.model.classifier.bias -= 1.0
    other = TorchPeerRuntime(str(small_inputs.checkpoint), threads=1, compile=True, cls_only=True)
    with torch.no_grad():
        other.model.classifier.bias += 1.0  # before compiling: part of its own frozen graph
    assert np.allclose(logits_of(other, data, ONE_BATCH), before + 1.0, atol=TOLERANCE)
    assert other.compiling_calls == 1 and other.compile_seconds > 0


@pytest.mark.slow
def test_compiled_bf16_agrees_with_eager_fp32(small_inputs, data, eager_fp32):
    backend = TorchPeerRuntime(str(small_inputs.checkpoint), threads=1, precision="bf16", compile=True)
    out, reference = logits_of(backend, data, ONE_BATCH), logits_of(eager_fp32, data)
    assert out.dtype == np.float32 and 1e-3 < np.abs(out - reference).max() < BF16_BOUND
    clear = np.abs(reference[:, 0] - reference[:, 1]) > CLEAR
    assert (out.argmax(1) == reference.argmax(1))[clear].all() and backend.compiling_calls == 1


@pytest.mark.slow
def test_the_int8_row_compiles_once_and_agrees_with_fp32(small_inputs, data, eager_fp32):
    pytest.importorskip("torchao")
    from tinybert.bench.rows import row

    why = unmet("torchao")  # the benchmark skips the row for the same reason
    if why:
        pytest.skip(why)
    backend = open_path(row("PTq8"), threads=1, ckpt_dir=str(small_inputs.checkpoint))
    assert (backend.compile, backend.quantize, backend.cls_only, backend.compile_mode) == (True, "int8", True, None)
    assert backend.warm_up([(ONE_BATCH, data[0][0].shape[1])]) > 0 and backend.compiling_calls == 1
    out, reference = logits_of(backend, data, ONE_BATCH), logits_of(eager_fp32, data, ONE_BATCH)
    assert 1e-4 < np.abs(out - reference).max() < INT8_BOUND and backend.compiling_calls == 1
    clear = np.abs(reference[:, 0] - reference[:, 1]) > 2 * INT8_BOUND
    assert (out.argmax(1) == reference.argmax(1))[clear].all()
