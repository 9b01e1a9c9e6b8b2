"""PyTorch on a CUDA GPU: the checkpoint in fp32 (TF32 off), TF32, fp16 or bf16, last layer at [CLS] only, one CUDA
graph per (rows, length) shape captured on first use and replayed, pinned host buffers and asynchronous copies."""

from __future__ import annotations

import contextlib
import time
import types

import numpy as np
import torch

from tinybert.capabilities import Gpu, gpu as find_gpu
from tinybert.errors import UsageError, expect
from tinybert.machine import physical_cores, use_compile_cache
from tinybert.model.modeling import MASK_FILL, cls_only_last_layer, load_tinybert
from tinybert.runtimes.interface import RuntimeBase
from tinybert.settings import GPU_LENGTH_STEP

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
COMPILE_MODES = ("default", "max-autotune")  # torch.compile's
# fp32 is the card's column and must match the CPU within EXPORT_TOLERANCE: TF32 only where asked for.
_MATMUL_PRECISION = {"tf32": "high"}
# Inductor's CUDA graph trees run a shape's first call as a warm-up and record on the second: a third replays, so a
# compiled shape is called this often when prepared and never records inside a timed or corpus pass.
COMPILED_WARM_CALLS = 3


class CudaDevice:
    """The calls that need a real GPU, in one place: graphs, pinned memory, streams, the TF32 switch."""

    faked = False

    def __init__(self, gpu: Gpu):
        self.gpu = gpu
        self.torch_device = torch.device("cuda", gpu.index)
        torch.cuda.set_device(self.torch_device)
        # One memory pool for all of this runtime's graphs: replays are serialized on one stream, so each graph's
        # intermediates may reuse another's; the pool is the largest graph's, not the sum over every shape.
        self.pool = torch.cuda.graph_pool_handle()

    def pinned(self, shape, dtype) -> torch.Tensor:
        return torch.zeros(shape, dtype=dtype, pin_memory=True)

    def synchronize(self) -> None:
        torch.cuda.current_stream(self.torch_device).synchronize()

    @contextlib.contextmanager
    def matmul_precision(self, precision: str):
        previous = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision(_MATMUL_PRECISION.get(precision, "highest"))
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(previous)

    def capture(self, forward, inputs):
        """`forward(*inputs)` as a CUDA graph (warmed up on a side stream first, as PyTorch's docs do it); returns
        the replay function and the graph's static output."""
        side = torch.cuda.Stream(self.torch_device)
        side.wait_stream(torch.cuda.current_stream(self.torch_device))
        with torch.cuda.stream(side):
            for _ in range(2):
                forward(*inputs)
        torch.cuda.current_stream(self.torch_device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            output = forward(*inputs)
        return graph.replay, output


class FakedCudaDevice(CudaDevice):
    """A faked GPU (capabilities.FAKE_GPU_ENV): the same buffers and calls on the CPU; capture runs the function
    eagerly into the static output, and pinning, streams and the TF32 switch are left out."""

    faked = True

    def __init__(self, gpu: Gpu):
        self.gpu = gpu
        self.torch_device = torch.device("cpu")
        self.pool = None

    def pinned(self, shape, dtype) -> torch.Tensor:
        return torch.zeros(shape, dtype=dtype)

    def synchronize(self) -> None:
        pass

    @contextlib.contextmanager
    def matmul_precision(self, precision: str):
        yield

    def capture(self, forward, inputs):
        output = forward(*inputs)

        def replay():
            output.copy_(forward(*inputs))

        return replay, output


class _Shape:
    """One (rows, length) shape: pinned host staging, the device inputs, the captured graph and its output."""

    def __init__(self, runtime: CudaRuntime, rows: int, length: int):
        device = runtime.device
        self.rows, self.length, self.device = rows, length, device
        self.host_in = device.pinned((3, rows, length), torch.int64)
        self.host_out = device.pinned((rows, runtime.num_labels), torch.float32)
        self.device_in = torch.zeros((3, rows, length), dtype=torch.int64, device=device.torch_device)
        inputs = tuple(self.device_in.unbind(0))
        with device.matmul_precision(runtime.precision), torch.inference_mode():
            if runtime.graphs:
                self.replay, self.device_out = device.capture(runtime.forward, inputs)
            else:
                self.device_out = None
                self.replay = lambda: setattr(self, "device_out", runtime.forward(*inputs))
                with runtime.compiling((rows, length)):  # compiled now, and warmed to its replay, so a pass never is
                    for _ in range(COMPILED_WARM_CALLS if runtime.compile_mode else 1):
                        self.replay()

    def run(self, arrays) -> np.ndarray:
        rows, length = arrays[0].shape
        host = self.host_in.numpy()
        for slot, array in enumerate(arrays):
            host[slot, :rows, :length] = array
        host[:, :rows, length:] = 0  # padding: mask 0, so the extra positions change no logit
        host[:, rows:] = 0  # filler rows: computed, then dropped
        with torch.inference_mode():
            self.device_in.copy_(self.host_in, non_blocking=True)
            self.replay()
            self.host_out.copy_(self.device_out, non_blocking=True)
        self.device.synchronize()
        return self.host_out.numpy()[:rows].copy()


class CudaRuntime(RuntimeBase):
    name = "pytorch-cuda"
    batch_size = None
    seq_len = None
    requests = 1  # one stream: calls run one after another, each a graph replay
    threads: int

    def __init__(self, model_path: str, threads: int | None = None, device: int | None = None,
                 precision: str = "fp32", graphs: bool = True, compile_mode: str | None = None,
                 length_step: int = GPU_LENGTH_STEP, cls_only: bool = True, dynamic: bool | None = False,
                 fused: bool = True):
        expect(precision in DTYPES, UsageError, f"expected precision {', '.join(DTYPES)}, got {precision!r}")
        expect(compile_mode is None or compile_mode in COMPILE_MODES, UsageError,
               f"expected compile_mode None or {', '.join(COMPILE_MODES)}, got {compile_mode!r}")
        expect(length_step >= 1, UsageError, f"expected a positive length_step, got {length_step}")
        gpu = find_gpu(0 if device is None else device)
        self.device = FakedCudaDevice(gpu) if gpu.faked else CudaDevice(gpu)
        self.threads = threads or physical_cores()
        self.precision, self.compile_mode, self.length_step = precision, compile_mode, length_step
        self.dynamic = dynamic  # torch.compile's: False, one compiled shape each; None, torch's default (peers)
        # Inductor's max-autotune replays its own CUDA graphs: ours would capture a capture.
        self.graphs = bool(graphs) and compile_mode is None
        model = load_tinybert(model_path)
        self.num_labels = model.classifier.out_features
        self.max_length = model.config.max_position_embeddings
        self._context = contextlib.ExitStack()  # the [CLS]-only switch, for this model's life
        if cls_only:
            self._context.enter_context(cls_only_last_layer(model))
        self.model = model.to(device=self.device.torch_device, dtype=DTYPES[precision])
        self.fused = bool(fused)  # the project's paths; the peer rows run the model as its users do
        forward = _fused_forward(self.model, cls_only) if fused else _forward(self.model)
        self.forward = self._compiled(forward) if compile_mode else forward
        self._shapes: dict[tuple[int, int], _Shape] = {}
        self.prepare_seconds = 0.0  # capturing and compiling, kept out of every timed pass (warm_up)

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """The (padded rows, padded length) shapes prepared so far, one graph (or compiled code) each."""
        return sorted(self._shapes)

    def _compiled(self, forward):
        # Inductor needs the real device; a faked one only traces (Dynamo), which still exercises this branch.
        backend = "eager" if self.device.faked else "inductor"
        options = {} if self.device.faked else {"mode": self.compile_mode}
        self.compile_cache = None if self.device.faked else use_compile_cache()  # a faked one compiles nothing
        return torch.compile(forward, dynamic=self.dynamic, backend=backend, **options)

    def compile_limit(self) -> int:
        """Dynamo's recompile limit while this runtime prepares its next shape: one compiled graph per shape so
        far, and the new one."""
        return len(self._shapes) + 1

    @contextlib.contextmanager
    def compiling(self, shape):
        """Dynamo's limits sized to this runtime's shapes, a limit hit an error (never a silent eager fallback);
        torch's process-wide config is patched only while a shape is prepared."""
        if not self.compile_mode:
            yield
            return
        import torch._dynamo.config as dynamo
        from torch._dynamo.exc import FailOnRecompileLimitHit

        limit = self.compile_limit()
        try:
            with dynamo.patch(recompile_limit=limit, fail_on_recompile_limit_hit=True,
                              accumulated_recompile_limit=max(limit, dynamo.accumulated_recompile_limit)):
                yield
        except FailOnRecompileLimitHit as exc:
            exc.add_note(f"pytorch-cuda: expected at most {limit} compiled graph(s) of this runtime, got one more "
                         f"at shape {shape}")
            raise

    def padded_rows(self, rows: int) -> int:
        """Rows rounded up to an eighth of their power of two (at most 1/8 more work): a chunk's odd-sized last batch
        reuses a graph instead of capturing one per row count."""
        step = 1 << max(0, rows.bit_length() - 4)
        return -(-rows // step) * step

    def padded_length(self, length: int) -> int:
        """Lengths rounded up to `length_step` (never past the model's positions): fewer shapes to capture."""
        return min(-(-length // self.length_step) * self.length_step, max(length, self.max_length))

    def _shape(self, rows: int, length: int) -> _Shape:
        key = (self.padded_rows(rows), self.padded_length(length))
        if key not in self._shapes:
            tick = time.perf_counter()
            self._shapes[key] = _Shape(self, *key)
            self.prepare_seconds += time.perf_counter() - tick
        return self._shapes[key]

    def run(self, input_ids: np.ndarray, segment_ids: np.ndarray, input_mask: np.ndarray) -> np.ndarray:
        rows, length = input_ids.shape
        return self._shape(rows, length).run((input_ids, segment_ids, input_mask))

    def warm_up(self, shapes) -> float:
        """Capture (or compile) every (rows, length) of `shapes` now; the seconds it took."""
        before = self.prepare_seconds
        for rows, length in sorted(set(shapes)):
            self._shape(rows, length)
        return self.prepare_seconds - before


def _fresh(forward):
    """`forward` with a code object of its own: Dynamo keeps compiled graphs and counts recompiles per code object,
    so runtimes sharing one would share its recompile limit."""
    return types.FunctionType(forward.__code__.replace(), forward.__globals__, forward.__name__, None,
                              forward.__closure__)


def _forward(model):
    def forward(input_ids, segment_ids, input_mask):  # called under inference mode (_Shape)
        return model(input_ids, segment_ids, input_mask).float()

    return _fresh(forward)


def _fused_forward(model, cls_only: bool):
    """The model's computation with one QKV projection per layer and scaled_dot_product_attention (fused kernels);
    the model's own attention stays unfused for its opset-11 export."""
    import torch.nn.functional as F

    bert = model.bert
    layers = []
    for layer in bert.encoder.layer:
        attention = layer.attention.self
        weight = torch.cat([attention.query.weight, attention.key.weight, attention.value.weight])
        bias = torch.cat([attention.query.bias, attention.key.bias, attention.value.bias])
        layers.append((weight, bias, attention.num_attention_heads, layer))
    embeddings, dtype, last = bert.embeddings, bert.embeddings.word_embeddings.weight.dtype, len(layers) - 1

    def forward(input_ids, segment_ids, input_mask):  # called under inference mode (_Shape)
        batch, length = input_ids.shape
        mask = (1.0 - input_mask[:, None, None, :].to(dtype)) * MASK_FILL  # the model's additive mask
        hidden = embeddings(input_ids=input_ids, token_type_ids=segment_ids)
        for i, (weight, bias, heads, layer) in enumerate(layers):
            qkv = F.linear(hidden, weight, bias).view(batch, length, 3, heads, -1).permute(2, 0, 3, 1, 4)
            query, key, value = qkv.unbind(0)
            residual = hidden
            if cls_only and i == last:  # the classifier reads [CLS] alone
                query, residual = query[:, :, :1], hidden[:, :1]
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
            context = context.transpose(1, 2).reshape(batch, residual.shape[1], -1)
            attended = layer.attention.output.LayerNorm(layer.attention.output.dense(context) + residual)
            hidden = layer.output.LayerNorm(layer.output.dense(layer.intermediate(attended)) + attended)
        return model.classifier(torch.relu(bert.pooler(hidden))).float()

    return _fresh(forward)


def matmul_chain(weights, *, precision: str, threads: int, requests: int):
    """The roofline's chain on the GPU at `precision` (as this runtime sets it), the input moved there once per M;
    each call waits for the GPU, so a call's time is the GEMMs' own."""
    found = find_gpu(0)
    device = FakedCudaDevice(found) if found.faked else CudaDevice(found)
    dtype = DTYPES[precision]
    mats = [torch.from_numpy(w.T.copy()).to(device.torch_device, dtype) for w in weights]
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
