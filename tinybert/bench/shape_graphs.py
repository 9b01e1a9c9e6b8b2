"""A TinyBERT layer's matrix multiplies at the model's shapes (x [M, 312] -> 312x312 -> 312x1200 -> 1200x312,
relus between), one graph per engine and precision, built by the chain its runtime's registry record names."""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np

from tinybert import registry
from tinybert.errors import BackendUnavailableError, UsageError, expect

SHAPES = ((312, 312), (312, 1200), (1200, 312))  # (K, N) of each matrix multiply, in order
CALIBRATION_ROWS, CALIBRATION_BATCHES = 64, 4


def chain_flops(m: int) -> int:
    """Multiply-add FLOPs (2 per multiply-add) of the chain on M rows."""
    return 2 * m * sum(k * n for k, n in SHAPES)


def weights(seed: int = 0) -> list[np.ndarray]:
    """(K, N) float32 matrices scaled by 1/sqrt(K), so activations stay near unit size through the chain."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32) for k, n in SHAPES]


def inputs(m: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((m, SHAPES[0][0])).astype(np.float32)


def check_recipe(runtime: str, precision: str):
    """The chain of a known engine/precision that can run here (and its runtime), else UsageError or
    BackendUnavailableError."""
    from tinybert.capabilities import current, require
    from tinybert.runtimes.needs import unmet

    chain, owner = registry.chain(runtime, precision)
    require(owner.package.name, f"the {runtime} roofline")
    for need in dict.fromkeys(owner.needs + chain.needs):
        reason = unmet(need)
        if reason:
            raise BackendUnavailableError(f"{runtime} {precision}: "
                                          f"{chain.unmet.format(cpu_class=current().cpu_class) if chain.unmet else reason}")
    return chain, owner


def write_onnx(path: str) -> str:
    """The fp32 chain as ONNX (opset 13: what static QDQ quantization needs), M a dynamic axis."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    mats = weights()
    nodes, source = [], "x"
    for i, _ in enumerate(mats, 1):
        nodes.append(helper.make_node("MatMul", [source, f"w{i}"], [f"mm{i}"]))
        source = f"mm{i}"
        if i < len(mats):
            nodes.append(helper.make_node("Relu", [source], [f"relu{i}"]))
            source = f"relu{i}"
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(nodes, "tinybert_layer_matmuls",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", SHAPES[0][0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", SHAPES[-1][1]])],
                              initializer=[numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(mats, 1)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def _onnx_chain(work_dir: str) -> str:
    path = os.path.join(work_dir, "chain.onnx")
    return path if os.path.exists(path) else write_onnx(path)


def _calibration():
    return [{"x": inputs(CALIBRATION_ROWS, seed=10 + i)} for i in range(CALIBRATION_BATCHES)]


BASE_MODELS = ("weights", "onnx")  # the chain's own forms; any other is a model kind's (its quantizer makes it)


def chain_model(kind: str, work_dir: str):
    """The chain as a chain of `kind` takes it: its weights, its ONNX file, or that file made into model kind `kind`
    by the kind's quantizer (once per work_dir)."""
    from tinybert.model_kinds import kind as model_kind, resolve

    if kind == "weights":
        return weights()
    fp32 = _onnx_chain(work_dir)
    if kind == "onnx":
        return fp32
    entry = model_kind(kind)
    expect(entry.quantizer is not None, UsageError,
           f"expected a chain model among {', '.join(BASE_MODELS)} or a model kind with a quantizer, got {kind!r}")
    target = os.path.join(work_dir, entry.chain_file())
    if not os.path.exists(target):
        with contextlib.redirect_stdout(io.StringIO()):  # a quantizer's progress bars: not what this step reports
            resolve(entry.quantizer)(fp32, target, _calibration())
    return target


def build_runner(runtime: str, precision: str, threads: int, requests: int, work_dir: str, device: int = 0):
    """`run(x [M, 312] float32)`, safe to call from `requests` threads at once; a GPU chain on GPU `device`."""
    from tinybert.runtimes.needs import resolve

    chain, owner = check_recipe(runtime, precision)
    expect(owner.requests or requests == 1, UsageError,
           f"{runtime}: expected one call at a time (its runtime takes no REQUESTS), got {requests} requests")
    on_device = {"device": device} if owner.device == registry.CUDA else {}
    return resolve(chain.build)(chain_model(chain.model, work_dir), precision=precision, threads=threads,
                                requests=requests, **on_device)
