"""A TinyBERT layer's matrix multiplies at the model's shapes (x [M, 312] -> 312x312 -> 312x1200 -> 1200x312,
relus between), one graph per runtime and precision, built by the recipe of its benchmark rows."""

from __future__ import annotations

import contextlib
import io
import os
import threading

import numpy as np

from tinybert.errors import BackendUnavailableError, UsageError

SHAPES = ((312, 312), (312, 1200), (1200, 312))  # (K, N) of each matrix multiply, in order
RECIPES = {
    ("onnxruntime", "fp32"): "ONNX Runtime MatMul (MLAS)",
    ("onnxruntime", "int8"): "ONNX Runtime dynamic int8 (quantize_int8, as ORT_MODEL=int8)",
    ("onnxruntime", "int8_static"): "ONNX Runtime static int8 QDQ (quantize_static_int8, as ORT_MODEL=int8_static)",
    ("openvino", "fp32"): "OpenVINO f32",
    ("openvino", "bf16"): "OpenVINO INFERENCE_PRECISION_HINT=bf16 (as ORT_MODEL=bf16)",
    ("openvino", "int8"): "OpenVINO NNCF static int8 (quantize_nncf_int8, as the OV8 rows)",
    ("pytorch", "fp32"): "PyTorch eager linear",
    ("pytorch", "bf16"): "PyTorch eager linear under bf16 autocast",
    ("pytorch-compiled", "fp32"): "torch.compile (Inductor, frozen weights) of the linear layers, as the PTc rows",
    ("pytorch-compiled", "bf16"): "torch.compile (Inductor, frozen weights) under bf16 autocast, as the PTcb rows",
    ("pytorch-compiled", "int8"): "torchao int8 dynamic activation + int8 weight, torch.compile, as PTq8",
    ("pytorch-cuda", "fp32"): "PyTorch linear on the GPU, fp32 (TF32 off), inputs on the device",
    ("pytorch-cuda", "tf32"): "PyTorch linear on the GPU, TF32 tensor cores, inputs on the device",
    ("pytorch-cuda", "fp16"): "PyTorch linear on the GPU, fp16 tensor cores, inputs on the device",
    ("pytorch-cuda", "bf16"): "PyTorch linear on the GPU, bf16 tensor cores, inputs on the device",
}
PACKAGE = {"onnxruntime": "onnxruntime", "openvino": "openvino", "pytorch": "torch", "pytorch-compiled": "torch",
           "pytorch-cuda": "torch"}
GPU_RUNTIME = "pytorch-cuda"  # the chain on the GPU: rates against the GPU's peak, apart from the CPU's
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


def check_recipe(runtime: str, precision: str) -> None:
    """A known runtime/precision that can run here, else UsageError or BackendUnavailableError."""
    from tinybert.capabilities import current, require

    if (runtime, precision) not in RECIPES:
        raise UsageError(f"expected a runtime/precision among {', '.join(' '.join(k) for k in RECIPES)}, "
                         f"got {runtime} {precision}")
    require(PACKAGE[runtime], f"the {runtime} roofline")
    if runtime == "pytorch-compiled":
        reason = current().unmet("cxx") or (current().unmet("torchao") if precision == "int8" else None)
        if reason:
            raise BackendUnavailableError(f"{runtime} {precision}: {reason}")
    if runtime == GPU_RUNTIME:
        reason = current().unmet("torch_cuda") or (current().unmet("cuda_bf16") if precision == "bf16" else None)
        if reason:
            raise BackendUnavailableError(f"{runtime} {precision}: {reason}")
    if (runtime, precision) == ("openvino", "bf16") and not current().native_bf16:
        raise BackendUnavailableError(f"openvino bf16: expected a CPU with native bf16, got {current().cpu_class} "
                                      "(OpenVINO would silently run f32 here)")


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


def _ort_runner(precision: str, threads: int, requests: int, work_dir: str):
    """One session, its threads shared among the calls in flight (as OrtRuntime)."""
    import onnxruntime as ort

    from tinybert.export.graphs import quantize_int8, quantize_static_int8
    from tinybert.runtimes.onnxruntime import session_options

    model = _onnx_chain(work_dir)
    if precision != "fp32":  # quantized once per work_dir, for both thread layouts
        fp32, model = model, os.path.join(work_dir, f"chain_{precision}.onnx")
        if not os.path.exists(model) and precision == "int8":
            quantize_int8(fp32, model)
        elif not os.path.exists(model):
            quantize_static_int8(fp32, model, _calibration())
    session = ort.InferenceSession(model, session_options(threads, requests), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": x})[0]


def _openvino_runner(precision: str, threads: int, requests: int, work_dir: str):
    """Compiled as OpenVinoRuntime compiles (LATENCY hint, streams = requests), an infer request per thread."""
    import openvino as ov

    from tinybert.export.graphs import quantize_nncf_int8
    from tinybert.runtimes.openvino import compile_config

    model = _onnx_chain(work_dir)
    if precision == "int8":  # quantized once per work_dir, for both thread layouts
        fp32, model = model, os.path.join(work_dir, "chain_int8.xml")
        if not os.path.exists(model):
            with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars: not what this step reports
                quantize_nncf_int8(fp32, model, _calibration())
    config = compile_config(hint="LATENCY", precision="bf16" if precision == "bf16" else "f32", threads=threads,
                            requests=requests)
    compiled = ov.Core().compile_model(model, "CPU", config)
    local = threading.local()

    def run(x):
        request = getattr(local, "request", None)
        if request is None:
            request = local.request = compiled.create_infer_request()
        return request.infer({"x": x})[0]
    return run


def _torch_runner(precision: str, threads: int, requests: int, work_dir: str):
    """Eager linear layers on `threads` threads (torch's pool is process-wide: set per call and put back)."""
    import torch

    from tinybert.runtimes.torch_peer import torch_threads

    if requests != 1:
        raise UsageError(f"pytorch: expected one call at a time (its rows' layout), got {requests} requests")
    mats = [torch.from_numpy(w.T.copy()) for w in weights()]  # linear takes (N, K)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext

    def run(x):
        with torch.inference_mode(), autocast(), torch_threads(threads):
            h = torch.from_numpy(x)
            for i, w in enumerate(mats):
                h = torch.nn.functional.linear(h, w)
                h = torch.relu(h) if i < len(mats) - 1 else h
            return h
    return run


def _torch_compiled_runner(precision: str, threads: int, requests: int, work_dir: str):
    """The chain as linear modules, compiled as TorchPeerRuntime compiles (dynamic shapes, frozen weights);
    int8: quantized by torchao first, as the PTq8 row."""
    import torch

    from tinybert.runtimes.torch_peer import TORCHAO_INDUCTOR, FrozenCompiled, torch_threads

    if requests != 1:
        raise UsageError(f"pytorch-compiled: expected one call at a time (its rows' layout), got {requests} requests")
    layers = []
    for i, w in enumerate(weights()):
        linear = torch.nn.Linear(*w.shape, bias=False)
        linear.weight.data = torch.from_numpy(w.T.copy())
        layers += [linear] + ([torch.nn.ReLU()] if i < len(SHAPES) - 1 else [])
    chain = torch.nn.Sequential(*layers).eval()
    if precision == "int8":
        from tinybert.runtimes.torch_peer import quantize_int8_dynamic

        quantize_int8_dynamic(chain)

    def forward(x):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            return chain(x).float()

    compiled = FrozenCompiled(forward, config=TORCHAO_INDUCTOR if precision == "int8" else None)

    def run(x):
        with torch.inference_mode(), torch_threads(threads):
            return compiled(torch.from_numpy(x))
    return run


def _cuda_runner(precision: str, threads: int, requests: int, work_dir: str):
    """The chain's linear layers on the GPU at `precision` (as the CUDA runtime sets it), the input moved there
    once per M; each call waits for the GPU, so a call's time is the GEMMs' own."""
    import torch

    from tinybert.capabilities import gpu
    from tinybert.runtimes.cuda import DTYPES, CudaDevice, FakedCudaDevice

    if requests != 1:
        raise UsageError(f"{GPU_RUNTIME}: expected one call at a time (one stream), got {requests} requests")
    found = gpu(0)
    device = FakedCudaDevice(found) if found.faked else CudaDevice(found)
    dtype = DTYPES[precision]
    mats = [torch.from_numpy(w.T.copy()).to(device.torch_device, dtype) for w in weights()]
    on_device: dict = {}

    def run(x):
        h = on_device.get(x.shape)
        if h is None:
            h = on_device[x.shape] = torch.from_numpy(x).to(device.torch_device, dtype)
        with torch.inference_mode(), device.matmul_precision(precision):
            for i, w in enumerate(mats):
                h = torch.nn.functional.linear(h, w)
                h = torch.relu(h) if i < len(mats) - 1 else h
        device.synchronize()
        return h
    return run


RUNNERS = {"onnxruntime": _ort_runner, "openvino": _openvino_runner, "pytorch": _torch_runner,
           "pytorch-compiled": _torch_compiled_runner, GPU_RUNTIME: _cuda_runner}


def build_runner(runtime: str, precision: str, threads: int, requests: int, work_dir: str):
    """`run(x [M, 312] float32)`, safe to call from `requests` threads at once."""
    check_recipe(runtime, precision)
    return RUNNERS[runtime](precision, threads, requests, work_dir)
