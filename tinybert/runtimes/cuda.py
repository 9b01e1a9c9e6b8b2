"""PyTorch on a CUDA GPU: fp32 (TF32 off), TF32, fp16 or bf16, [CLS] only at the last layer, a CUDA graph per (rows,
length) replayed, int32 inputs staged through two pinned slots so the host gathers the next batch while one runs."""

from __future__ import annotations

import collections
import contextlib
import time
import types
import weakref

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
# Staging slots: batch n+1 is gathered and copied through one while batch n's copy and replay use the other.
SLOTS = 2


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
        torch.cuda.synchronize(self.torch_device)  # every stream: the staging's copy stream too

    # Streams and events: the staging's ordering (CudaRuntime.run_calls) goes through these, so a faked device shows it.
    def stream(self):
        return torch.cuda.Stream(self.torch_device)

    def current(self):
        return torch.cuda.current_stream(self.torch_device)

    def event(self):
        return torch.cuda.Event()

    def enqueue(self, stream, work) -> None:
        with torch.cuda.stream(stream):
            work()

    def record(self, event, stream) -> None:
        event.record(stream)

    def wait(self, stream, event) -> None:
        stream.wait_event(event)

    def host_wait(self, event) -> None:
        event.synchronize()

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


class _Mark:
    """One record of a faked event: done once its stream has run up to it."""

    def __init__(self, stream):
        self.stream, self.done = stream, False

    def __call__(self):
        self.done = True


class LazyStream:
    """A faked stream: work is queued and runs only when a wait needs it, as late as a GPU may run it, so a buffer
    written again before its event completed is read later with the wrong batch in it."""

    eager = False  # True: its work runs as soon as queued (as early as a GPU may run it), the other extreme

    def __init__(self):
        self.queue: collections.deque = collections.deque()

    def run_to(self, mark: _Mark) -> None:
        while not mark.done:
            self.queue.popleft()()

    def drain(self) -> None:
        while self.queue:
            self.queue.popleft()()


class LazyEvent:
    mark: _Mark | None = None  # its latest record; None: never recorded (complete, as CUDA's)


class FakedCudaDevice(CudaDevice):
    """A faked GPU (capabilities.FAKE_GPU_ENV): the same buffers and calls on the CPU; capture runs the function
    eagerly into the static output, streams run their work lazily, pinning and the TF32 switch are left out."""

    faked = True

    def __init__(self, gpu: Gpu):
        self.gpu = gpu
        self.torch_device = torch.device("cpu")
        self.pool = None
        self._current = LazyStream()
        self._streams = [self._current]

    def pinned(self, shape, dtype) -> torch.Tensor:
        return torch.zeros(shape, dtype=dtype)

    def synchronize(self) -> None:
        while any(stream.queue for stream in self._streams):
            for stream in self._streams:
                stream.drain()

    def stream(self):
        self._streams.append(LazyStream())
        return self._streams[-1]

    def current(self):
        return self._current

    def event(self):
        return LazyEvent()

    def enqueue(self, stream, work) -> None:
        stream.queue.append(work)
        if stream.eager:
            stream.drain()

    def record(self, event, stream) -> None:
        event.mark = _Mark(stream)
        self.enqueue(stream, event.mark)

    def wait(self, stream, event) -> None:
        mark = event.mark  # the record in force now, as cudaStreamWaitEvent takes it
        if mark is not None:
            self.enqueue(stream, lambda: mark.stream.run_to(mark))

    def host_wait(self, event) -> None:
        if event.mark is not None:
            event.mark.stream.run_to(event.mark)

    @contextlib.contextmanager
    def matmul_precision(self, precision: str):
        yield

    def capture(self, forward, inputs):
        output = forward(*inputs)

        def replay():
            output.copy_(forward(*inputs))

        return replay, output


class _Shape:
    """One (rows, length) shape: its static int32 device input (ids and lengths; all three planes where the segments
    or the mask say more) and the captured graph that widens it, builds the model's inputs and runs the model."""

    def __init__(self, runtime: CudaRuntime, rows: int, length: int, compact: bool):
        device = runtime.device
        self.runtime, self.rows, self.length, self.compact = runtime, rows, length, compact
        self.size = rows * length + rows if compact else 3 * rows * length
        self.static = torch.zeros(self.size, dtype=torch.int32, device=device.torch_device)
        with device.matmul_precision(runtime.precision), torch.inference_mode():
            if runtime.graphs:
                self.replay, self.device_out = device.capture(self.forward, (self.static,))
            else:
                self.device_out = None
                self.replay = lambda: setattr(self, "device_out", self.forward(self.static))
                with runtime.compiling((rows, length)):  # compiled now, and warmed to its replay, so a pass never is
                    for _ in range(COMPILED_WARM_CALLS if runtime.compile_mode else 1):
                        self.replay()

    def inputs(self, static: torch.Tensor):
        """The model's int64 ids, segments and mask from the static buffer, built on the device (in the graph)."""
        rows, length = self.rows, self.length
        if not self.compact:
            return static.view(3, rows, length).long().unbind(0)
        ids = static[:rows * length].view(rows, length).long()
        lengths = static[rows * length:]
        mask = (torch.arange(length, device=static.device)[None, :] < lengths[:, None]).long()
        return ids, torch.zeros_like(ids), mask

    def forward(self, static: torch.Tensor):
        return self.runtime.forward(*self.inputs(static))


class _Slot:
    """One staging slot: pinned int32 input and float32 output on the host, the input's copy on the device, and the
    events that say when each may be written again."""

    def __init__(self, device, size: int, out_size: int):
        self.host_in = device.pinned((size,), torch.int32)
        self.device_in = torch.zeros(size, dtype=torch.int32, device=device.torch_device)
        self.host_out = device.pinned((out_size,), torch.float32)
        self.copied, self.consumed, self.done = device.event(), device.event(), device.event()

    def gather(self, shape: _Shape, arrays, lengths, indices: np.ndarray, length: int) -> int:
        """The batch's rows into the pinned input as int32 (numpy's indexed gather: np.take with a cast is slower,
        docs/measurements/gpu-staging-gather-intel-2vcpu-loaded.md), zero past each length and in filler rows; the count."""
        rows, padded = shape.rows, shape.length
        planes = 1 if shape.compact else 3
        host = self.host_in.numpy()[:shape.size]
        grid = host[:planes * rows * padded].reshape(planes, rows, padded)
        for plane, array in zip(grid, arrays[:planes]):
            plane[:len(indices), :length] = array[indices, :length]
        grid[:, :len(indices), length:] = 0  # padding: mask 0, so the extra positions change no logit
        grid[:, len(indices):] = 0  # filler rows: computed, then dropped
        if shape.compact:
            counts = host[rows * padded:]
            np.minimum(lengths[indices], length, out=counts[:len(indices)])
            counts[len(indices):] = 0
        return shape.size


def _copy(target: torch.Tensor, source: torch.Tensor):
    return lambda: target.copy_(source, non_blocking=True)


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
        self._shapes: dict[tuple[int, int, bool], _Shape] = {}
        self._slots: list[_Slot] = []
        self._copies = self.device.stream()  # the host-to-device copies, beside the compute stream
        self._layout_of = None
        self.prepare_seconds = 0.0  # capturing and compiling, kept out of every timed pass (warm_up)

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """The (padded rows, padded length) shapes prepared so far, one graph (or compiled code) each."""
        return sorted({key[:2] for key in self._shapes})

    def _compiled(self, forward):
        # Inductor needs the real device; a faked one only traces (Dynamo), which still exercises this branch.
        backend = "eager" if self.device.faked else "inductor"
        options = {} if self.device.faked else {"mode": self.compile_mode}
        self.compile_cache = None if self.device.faked else use_compile_cache()  # a faked one compiles nothing
        return torch.compile(forward, dynamic=self.dynamic, backend=backend, **options)

    def compile_limit(self) -> int:
        """Dynamo's recompile limit while this runtime prepares its next shape: one compiled graph per shape so
        far, and the new one."""
        return len(self.shapes) + 1

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

    def _shape(self, rows: int, length: int, compact: bool = True) -> _Shape:
        key = (self.padded_rows(rows), self.padded_length(length), compact)
        if key not in self._shapes:
            tick = time.perf_counter()
            self._shapes[key] = _Shape(self, *key)
            self.prepare_seconds += time.perf_counter() - tick
        return self._shapes[key]

    def run(self, input_ids: np.ndarray, segment_ids: np.ndarray, input_mask: np.ndarray) -> np.ndarray:
        outputs = []
        self.run_calls((input_ids, segment_ids, input_mask), [(np.arange(len(input_ids)), input_ids.shape[1])],
                       lambda position, logits: outputs.append(logits))
        return outputs[0]

    def run_calls(self, arrays, calls, on_output) -> None:
        """Each (indices, length) call of `arrays`, in order, through the two staging slots: while the GPU runs one
        call the host gathers the next; `on_output(position, logits)` sees each call's logits in order."""
        lengths, compact = self._layout(arrays)
        planned = [(np.asarray(indices), int(length), self._shape(len(indices), int(length), compact))
                   for indices, length in calls]  # every graph captured before the first copy is queued
        if not planned:
            return
        device, slots = self.device, self._staging(planned)
        compute, pending = device.current(), collections.deque()
        with torch.inference_mode(), device.matmul_precision(self.precision):
            for position, (indices, length, shape) in enumerate(planned):
                slot = slots[position % SLOTS]
                device.host_wait(slot.copied)  # its last copy has left the pinned input
                size = slot.gather(shape, arrays, lengths, indices, length)
                device.wait(self._copies, slot.consumed)  # its last batch has moved on from the device copy
                device.enqueue(self._copies, _copy(slot.device_in[:size], slot.host_in[:size]))
                device.record(slot.copied, self._copies)
                if len(pending) == SLOTS:  # the slot's output is read before this call's may land in it
                    self._deliver(*pending.popleft(), on_output)
                out = slot.host_out[:shape.rows * self.num_labels].view(shape.rows, self.num_labels)
                device.wait(compute, slot.copied)
                device.enqueue(compute, _copy(shape.static, slot.device_in[:size]))
                device.record(slot.consumed, compute)
                device.enqueue(compute, shape.replay)
                device.enqueue(compute, lambda out=out, shape=shape: out.copy_(shape.device_out, non_blocking=True))
                device.record(slot.done, compute)
                pending.append((position, slot, out, len(indices)))
            while pending:
                self._deliver(*pending.popleft(), on_output)

    def _deliver(self, position, slot, out, rows, on_output) -> None:
        self.device.host_wait(slot.done)
        on_output(position, out.numpy()[:rows].copy())

    def _layout(self, arrays):
        """Each sample's length and whether ids and lengths say all (segments 0, masks right-padded); read once per
        arrays, since a pass hands the same ones again."""
        ids, segments, mask = arrays
        cached = self._layout_of
        if cached and cached[0]() is mask and cached[1]() is segments and cached[2] == mask.shape:
            return cached[3]
        lengths = mask.sum(axis=1, dtype=np.int64)
        right_padded = np.array_equal(mask, np.arange(mask.shape[1])[None, :] < lengths[:, None])
        layout = (lengths.astype(np.int32), right_padded and not segments.any())
        try:
            self._layout_of = (weakref.ref(mask), weakref.ref(segments), mask.shape, layout)
        except TypeError:  # a view of no weak-referenceable base: read again next time
            self._layout_of = None
        return layout

    def _staging(self, planned) -> list[_Slot]:
        """The two slots, grown (between passes, nothing in flight) to the largest call planned."""
        size = max(shape.size for _, _, shape in planned)
        out_size = max(shape.rows for _, _, shape in planned) * self.num_labels
        if not self._slots or self._slots[0].host_in.numel() < size or self._slots[0].host_out.numel() < out_size:
            self.device.synchronize()
            self._slots = [_Slot(self.device, size, out_size) for _ in range(SLOTS)]
        return self._slots

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


def matmul_chain(weights, *, precision: str, threads: int, requests: int, device: int = 0):
    """The roofline's chain on GPU `device` (DEVICE) at `precision` (as this runtime sets it), the input moved there
    once per M; each call waits for the GPU, so a call's time is the GEMMs' own."""
    found = find_gpu(device)
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
