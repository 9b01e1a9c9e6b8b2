"""PyTorch as a peer at its best on the CPU, as a torch user would run it (bf16 autocast, torchao int8 and/or
torch.compile with frozen weights, last layer at [CLS] only); compile time is kept out of the passes (`warm_up`)."""

from __future__ import annotations

import contextlib
import functools
import time
import types

import numpy as np
import torch

from tinybert.errors import UsageError, expect
from tinybert.machine import physical_cores
from tinybert.model.modeling import cls_only_last_layer, load_tinybert
from tinybert.runtimes.interface import RuntimeBase

PRECISIONS = ("fp32", "bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's
QUANTIZE = ("int8",)  # torchao's int8 dynamic activation + int8 weight (`quantize_int8_dynamic`)


def graphs_compiled() -> int:
    """Graphs Dynamo has compiled in this process so far (any function, any backend)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


class TorchPeerRuntime(RuntimeBase):
    name = "pytorch-peer"
    batch_size = None
    seq_len = None
    threads: int
    requests = 1  # torch's thread pool is process-wide: one call at a time, on all threads

    def __init__(self, model_path: str, threads: int | None = None, precision: str = "fp32",
                 compile: bool = False, cls_only: bool = False,  # noqa: A002 - torch's own word
                 compile_mode: str | None = None, quantize: str | None = None):
        _check_options(precision, compile, compile_mode, quantize)
        self.threads = threads or physical_cores()
        self.precision, self.compile, self.cls_only = precision, bool(compile), bool(cls_only)
        self.compile_mode, self.quantize = compile_mode, quantize
        self.model = load_tinybert(model_path)
        if quantize:
            quantize_int8_dynamic(self.model)
        self._context = contextlib.ExitStack()  # holds the [CLS]-only switch for this model's life
        if cls_only:
            self._context.enter_context(cls_only_last_layer(self.model))
        forward = _forward(self.model, precision == "bf16")
        self._forward = FrozenCompiled(forward, mode=compile_mode, config=TORCHAO_INDUCTOR if quantize else None) \
            if compile else forward
        self.compile_seconds = 0.0
        self.compiling_calls = 0

    def run(self, input_ids: np.ndarray, segment_ids: np.ndarray, input_mask: np.ndarray) -> np.ndarray:
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in (input_ids, segment_ids, input_mask)]
        before = graphs_compiled() if self.compile else 0
        tick = time.perf_counter()
        with torch.inference_mode(), torch_threads(self.threads):
            logits = self._forward(*tensors)
        if self.compile and graphs_compiled() > before:
            self.compile_seconds += time.perf_counter() - tick
            self.compiling_calls += 1
        return logits.numpy()

    def warm_up(self, shapes) -> float:
        """Run each (batch size, length) of `shapes` once, so that every compilation a pass over
        them triggers happens here; returns the seconds those compilations took."""
        before = self.compile_seconds
        for batch, length in sorted(set(shapes)):
            ids = np.zeros((batch, length), dtype=np.int64)
            self.run(ids, ids, np.ones_like(ids))
        return self.compile_seconds - before


def _check_options(precision: str, compile: bool, compile_mode: str | None,  # noqa: A002 - torch's own word
                   quantize: str | None) -> None:
    expect(precision in PRECISIONS, UsageError,
           f"expected precision {' or '.join(PRECISIONS)}, got {precision!r}")
    expect(compile_mode is None or compile_mode in COMPILE_MODES, UsageError,
           f"expected compile_mode None or {', '.join(map(repr, COMPILE_MODES))} (torch.compile's modes), "
           f"got {compile_mode!r}")
    expect(compile_mode is None or compile, UsageError,
           f"compile_mode {compile_mode!r}: expected compile=True, got compile={compile!r}")
    expect(quantize is None or quantize in QUANTIZE, UsageError,
           f"expected quantize None or {' or '.join(map(repr, QUANTIZE))}, got {quantize!r}")
    expect(quantize is None or precision == "fp32", UsageError,
           f"quantize {quantize!r}: expected precision 'fp32' (the weights it quantizes), got {precision!r}")


@contextlib.contextmanager
def torch_threads(threads: int):
    """torch's process-wide thread count set to `threads` for one call and put back: runtimes of other thread counts
    share the process (the benchmark's rows, a test run)."""
    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if before != threads:
            torch.set_num_threads(before)


# torchao's recommended_inductor_config_setter, which quantize_ applies to the whole process unless told not to.
TORCHAO_INDUCTOR = {"coordinate_descent_tuning": True, "coordinate_descent_check_all_directions": True,
                    "force_fuse_int_mm_with_mul": True, "triton.unique_kernel_names": True}


class FrozenCompiled:
    """torch.compile(forward, dynamic=True) traced with Inductor's freezing on, as PyTorch's CPU examples run it
    (docs/measurements/inductor-freezing.md), by config.patch around a shape's first call: the process keeps its config."""

    def __init__(self, forward, mode: str | None = None, config: dict | None = None):
        self.compiled = torch.compile(forward, dynamic=True, mode=mode)
        self.config = {"freezing": True, **(config or {})}
        if mode and mode.startswith("max-autotune"):
            _quiet_autotune()
            self.config["max_autotune_report_choices_stats"] = False
        self._seen: set = set()

    def __call__(self, *tensors):
        shape = tuple(t.shape for t in tensors)
        if shape in self._seen:
            return self.compiled(*tensors)
        import torch._inductor.config as inductor

        with inductor.patch(self.config):
            out = self.compiled(*tensors)
        self._seen.add(shape)
        return out


def _quiet_autotune() -> None:
    """Inductor writes each multiply's autotuning candidates to stderr, and a deprecation warning from its own
    code: the benchmark's lines would drown in them."""
    import warnings

    import torch._inductor.select_algorithm

    torch._inductor.select_algorithm.PRINT_AUTOTUNE = False
    warnings.filterwarnings("ignore", message="TypedStorage is deprecated", category=UserWarning)


def quantize_int8_dynamic(module) -> None:
    """torchao's int8 dynamic activation + int8 weight quantization of every linear layer, in place."""
    from tinybert.capabilities import quiet_torchao, require

    quiet_torchao()
    require("torchao", "the torchao int8 rows")
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantize_(module, Int8DynamicActivationInt8WeightConfig(set_inductor_config=False))  # TORCHAO_INDUCTOR, scoped


def _forward(model, bf16: bool):
    """The function run (and compiled), autocast inside so the compiled graph is the autocast one; a code object
    per backend, since Dynamo keeps graphs and counts recompilations per code object."""
    def forward(input_ids, segment_ids, input_mask):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids, segment_ids, input_mask)
        return logits.float()

    return types.FunctionType(forward.__code__.replace(), forward.__globals__, forward.__name__, None,
                              forward.__closure__)


def matmul_chain(weights, *, precision: str, threads: int, requests: int):
    """The roofline's chain as linear modules, compiled as this runtime compiles (dynamic shapes, frozen weights);
    int8: quantized by torchao first, as the PTq8 row."""
    layers = []
    for i, w in enumerate(weights):
        linear = torch.nn.Linear(*w.shape, bias=False)
        linear.weight.data = torch.from_numpy(w.T.copy())
        layers += [linear] + ([torch.nn.ReLU()] if i < len(weights) - 1 else [])
    chain = torch.nn.Sequential(*layers).eval()
    if precision == "int8":
        quantize_int8_dynamic(chain)

    def forward(x):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            return chain(x).float()

    compiled = FrozenCompiled(forward, config=TORCHAO_INDUCTOR if precision == "int8" else None)

    def run(x):
        with torch.inference_mode(), torch_threads(threads):
            return compiled(torch.from_numpy(x))
    return run


# ---------------------------------------------------------------- its need check (registry NeedCheck "torchao_int8")

# The most an int8 linear layer may be off, as a fraction of its fp32 output's largest value: int8 rounding stays
# well inside it, a kernel that saturates its int16 sums (AVX2 without VNNI, frozen weights) does not.
TORCHAO_MAX_ERROR = 0.05


@functools.lru_cache(maxsize=1)
def torchao_int8_fails() -> str | None:
    """Why torchao's int8 dynamic quantization cannot run on this CPU as the PTq8 row runs it (a small linear layer,
    eager and under torch.compile with frozen weights, tried once against fp32), or None."""
    from tinybert.capabilities import current

    try:
        eager, compiled = torchao_int8_errors()
    except Exception as exc:  # noqa: BLE001 - any failure means the row cannot run here; its reason is the note
        first = (str(exc).strip().splitlines() or [""])[0]
        return f"torchao is installed but its int8 quantization fails here: {type(exc).__name__}: {first}"
    if not eager < float("inf") or not compiled < float("inf"):
        return "torchao is installed but its int8 linear gives non-finite output here"
    if compiled > TORCHAO_MAX_ERROR:
        return (f"torchao is installed but its int8 linear under torch.compile with frozen weights is off by "
                f"{compiled:.1%} of the fp32 output here (eager int8: {eager:.1%}; at most {TORCHAO_MAX_ERROR:.0%}): "
                f"the row would time a wrong model on this CPU ({current().cpu_class})")
    return None


def torchao_int8_errors() -> tuple[float, float]:
    """A small linear layer's int8 output, eager and compiled with frozen weights, off from fp32 by these fractions
    of the fp32 output's largest value (inf where not finite)."""
    from tinybert.capabilities import quiet_torchao

    quiet_torchao()
    import torch._inductor.config as inductor
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    generator = torch.Generator().manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.Linear(64, 64)).eval()
    x = torch.randn(8, 64, generator=generator)
    with torch.inference_mode():
        reference = layer(x)
    quantize_(layer, Int8DynamicActivationInt8WeightConfig(set_inductor_config=False))
    with torch.inference_mode(), inductor.patch(freezing=True):
        eager, compiled = layer(x), torch.compile(layer)(x)

    def error(out) -> float:
        return float((out - reference).abs().max() / reference.abs().max()) if torch.isfinite(out).all() else \
            float("inf")

    return error(eager), error(compiled)
