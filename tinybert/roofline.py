"""This machine's measured matrix-multiply rate and the FLOPs of a batch: the roofline a CPU
inference row is held against, printed with every published table so figures from different
machines can be compared."""

from __future__ import annotations

import time


def measured_sgemm_gflops(threads: int, sizes=(512, 1024, 2048), repeats: int = 5) -> dict:
    """This machine's fp32 matrix-multiply rate: the best of PyTorch's BLAS, NumPy's BLAS and ONNX
    Runtime's MLAS over a few square sizes (the roofline a CPU inference row can reach)."""
    import torch

    torch.set_num_threads(threads)
    rates: dict[str, float] = {}
    for size in sizes:
        a, b = torch.randn(size, size), torch.randn(size, size)
        x, y = a.numpy(), b.numpy()
        flops = 2 * size ** 3
        candidates = {"torch.mm": lambda: torch.mm(a, b), "numpy.matmul": lambda: x @ y,
                      "onnxruntime MatMul": _ort_matmul(size, threads, x, y)}
        for name, func in candidates.items():
            rates[name] = max(rates.get(name, 0.0), _best_rate(func, flops, repeats))
    return {"gflops": max(rates.values()), "by_library": rates, "sizes": list(sizes), "threads": threads}


def _ort_matmul(size: int, threads: int, x, y):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    spec = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [size, size])  # noqa: E731
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "y"], ["z"])], "matmul", [spec("x"), spec("y")],
                              [spec("z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"x": x, "y": y})


def _best_rate(func, flops: float, repeats: int) -> float:
    func()
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - tick)
    return flops / best / 1e9


def batch_flops(config, rows: int, length: int) -> float:
    """Multiply-add FLOPs of the encoder, pooler and classifier for `rows` sequences of `length`."""
    h, inner = config.hidden_size, config.intermediate_size
    per_token = config.num_hidden_layers * (2 * (4 * h * h + 2 * h * inner) + 4 * length * h)
    return rows * (length * per_token + 2 * h * h + 2 * h * 2)
