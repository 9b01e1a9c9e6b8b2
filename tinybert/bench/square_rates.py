"""The square-size matrix-multiply rates (512-2048): a second figure that compares machines, labelled as
such, since it overstates what the model's 312-wide matrices reach (roofline.py measures those)."""

from __future__ import annotations

import time


def measured_sgemm_gflops(threads: int, sizes=(512, 1024, 2048), trials: int = 5) -> dict:
    """This machine's fp32 matrix-multiply rate: the best of PyTorch's BLAS, NumPy's BLAS and ONNX
    Runtime's MLAS over a few square sizes (the roofline a CPU inference row can reach)."""
    import torch

    from tinybert.runtimes.torch_peer import torch_threads

    rates: dict[str, float] = {}
    with torch_threads(threads):
        for size in sizes:
            a, b = torch.randn(size, size), torch.randn(size, size)
            x, y = a.numpy(), b.numpy()
            flops = 2 * size ** 3
            candidates = {"torch.mm": lambda: torch.mm(a, b), "numpy.matmul": lambda: x @ y,
                          "onnxruntime MatMul": _ort_matmul(size, threads, x, y)}
            for name, func in candidates.items():
                rates[name] = max(rates.get(name, 0.0), _best_rate(func, flops, trials))
    return {"gflops": max(rates.values()), "by_library": rates, "sizes": list(sizes), "threads": threads}


def measured_int8_gops(threads: int, sizes=(512, 1024, 2048), trials: int = 5) -> dict:
    """This machine's int8 matrix-multiply rate (u8 x s8 -> s32): ONNX Runtime's MatMulInteger over the same
    square sizes, weights constant (prepacked) and as an input, the best; VNNI or AMX where the CPU has them."""
    import numpy as np

    from tinybert.capabilities import current

    rng = np.random.default_rng(0)
    rates: dict[str, float] = {}
    for size in sizes:
        x = rng.integers(0, 256, size=(size, size), dtype=np.uint8)
        w = rng.integers(-128, 128, size=(size, size), dtype=np.int8)
        flops = 2 * size ** 3
        for name, constant in (("onnxruntime MatMulInteger, constant weights", True),
                               ("onnxruntime MatMulInteger", False)):
            rates[name] = max(rates.get(name, 0.0), _best_rate(_ort_matmul_integer(size, threads, x, w, constant),
                                                               flops, trials))
    return {"gops": max(rates.values()), "by_library": rates, "sizes": list(sizes), "threads": threads,
            "dot_product": current().int8_dot_product}


def _ort_session(graph, threads: int):
    """One call at a time on all `threads`, as OrtRuntime opens a session."""
    import onnxruntime as ort
    from onnx import helper

    from tinybert.runtimes.onnxruntime import session_options

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return ort.InferenceSession(model.SerializeToString(), session_options(threads, requests=1),
                                providers=["CPUExecutionProvider"])


def _ort_matmul_integer(size: int, threads: int, x, w, constant: bool):
    from onnx import TensorProto, helper

    spec = lambda name, kind: helper.make_tensor_value_info(name, kind, [size, size])  # noqa: E731
    inputs = [spec("x", TensorProto.UINT8)] + ([] if constant else [spec("w", TensorProto.INT8)])
    weights = [helper.make_tensor("w", TensorProto.INT8, [size, size], w.tobytes(), raw=True)] if constant else []
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["x", "w"], ["z"])], "matmul_integer", inputs,
                              [spec("z", TensorProto.INT32)], initializer=weights)
    session = _ort_session(graph, threads)
    feed = {"x": x} if constant else {"x": x, "w": w}
    return lambda: session.run(None, feed)


def _ort_matmul(size: int, threads: int, x, y):
    from onnx import TensorProto, helper

    spec = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [size, size])  # noqa: E731
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "y"], ["z"])], "matmul", [spec("x"), spec("y")],
                              [spec("z")])
    session = _ort_session(graph, threads)
    return lambda: session.run(None, {"x": x, "y": y})


def _best_rate(func, flops: float, trials: int) -> float:
    func()
    best = float("inf")
    for _ in range(trials):
        tick = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - tick)
    return flops / best / 1e9


def rates_line(sgemm: dict, int8: dict) -> str:
    """The header line every published table carries."""
    return (f"Measured matrix multiply on {sgemm['threads']} thread(s): fp32 **{sgemm['gflops']:.1f} GFLOP/s** (best of "
            f"{', '.join(sgemm['by_library'])}), int8 **{int8['gops']:.1f} GOP/s** (ONNX Runtime MatMulInteger, "
            f"{int8['dot_product']}), square sizes {sgemm['sizes']}.")
