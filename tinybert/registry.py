"""What each runtime, backend (BACKEND's values) and CPU path (ORT_MODEL's values, the benchmark's rows) is,
one entry each, read by everything that needs to know; standard library only, as the shell steps read it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from tinybert.capabilities import INSTALL_HINTS, PROVIDERS, current
from tinybert.errors import UsageError, expect
from tinybert.settings import default, model_path

ORT_MODEL_ROLES = ("card", "project")  # the paths ORT_MODEL can name
AUTO = "auto"  # the ORT_MODEL value that names no path: runtimes.route.resolve_ort_model picks one
CHECKPOINT = "checkpoint"  # the model kind of the paths that run the .pth checkpoint folder itself


@dataclass(frozen=True)
class Runtime:
    name: str
    module: str  # tinybert/runtimes/<module>.py
    cls: str
    install: str  # what to install when its import fails
    title: str
    requests: bool = False  # takes REQUESTS: several calls in flight on one session
    device: bool = False  # takes DEVICE: an NPU or CUDA GPU id
    gpu: bool = False  # computes on a CUDA GPU (capabilities.gpus)
    family: str = ""  # the engine its matrix multiplies are measured on (roofline); "" = its name

    @property
    def engine(self) -> str:
        return self.family or self.name


RUNTIMES = (
    Runtime(
        name="onnxruntime",
        module="onnxruntime",
        cls="OrtRuntime",
        install=INSTALL_HINTS["onnxruntime"],
        title="ONNX Runtime (CPU, or a GPU provider where installed)",
        requests=True,
    ),
    Runtime(
        name="openvino",
        module="openvino",
        cls="OpenVinoRuntime",
        install=INSTALL_HINTS["openvino"],
        title="OpenVINO on the CPU, fp32",
        requests=True,
    ),
    Runtime(
        name="openvino-bf16",
        module="openvino",
        cls="OpenVinoBf16Runtime",
        install=INSTALL_HINTS["openvino"],
        title="OpenVINO on the CPU, bf16 where the CPU computes it natively",
        requests=True,
        family="openvino",
    ),
    Runtime(
        name="pytorch",
        module="pytorch",
        cls="PyTorchRuntime",
        install=INSTALL_HINTS["torch"],
        title="PyTorch eager on the .pth checkpoint",
    ),
    Runtime(
        name="cann",
        module="cann",
        cls="CannRuntime",
        install=INSTALL_HINTS["cann"],
        title="ONNX Runtime's CANN execution provider on an Ascend NPU",
        device=True,
    ),
    Runtime(
        name="pytorch-peer",
        module="torch_peer",
        cls="TorchPeerRuntime",
        install=INSTALL_HINTS["torch"],
        title="PyTorch as a user who has torch runs it: eager or torch.compile (Inductor, frozen weights; default "
        "or max-autotune), fp32, bf16 autocast or torchao int8, last layer at [CLS] only",
        family="pytorch",
    ),
    Runtime(
        name="pytorch-cuda",
        module="cuda",
        cls="CudaRuntime",
        install=INSTALL_HINTS["torch_cuda"],
        title="PyTorch on a CUDA GPU: fp32 (TF32 off), TF32, fp16 or bf16, last layer at [CLS] only, a CUDA graph "
        "per (rows, length) shape, pinned buffers and asynchronous copies; or torch.compile per shape",
        device=True,
        gpu=True,
    ),
)


@dataclass(frozen=True)
class Backend:
    """A value of BACKEND: what runs the steps' inference on this machine."""

    name: str
    title: str
    loop: int  # LOOP default: timed iterations of perf.sh
    module: str  # what must import for it to run here ("" for none)
    not_installed: str  # why not and what to do ({python}: the interpreter); exit 3
    # The model kind it runs (ort_model: ORT_MODEL's; gpu_model: the checkpoint; om: OM, gears with DYNAMIC_DIMS)
    # and the message when it is missing ({path}, {bs}); None: the step scripts check the model themselves.
    model: str
    missing_model: str | None = None
    builds_with_chip: bool = False  # CHIP_NAME given: the step builds the models itself (ATC)
    auto: bool = True  # BACKEND=auto may choose it
    choosable: bool = True  # a BACKEND value (else only a LOOP default, for perf_gpu.sh)
    foreign: bool = False  # another tool runs it: its printed lines are its only record (no --json_out)
    needs: tuple[str, ...] = ()  # what else the machine must have (capabilities' needs)

    def unmet(self) -> str | None:
        """Why it cannot run here (its module missing, a need unmet), or None."""
        from tinybert.capabilities import current, installed

        if self.module and not installed(self.module):
            return f"{self.module} is not installed"
        return next((why for why in map(current().unmet, self.needs) if why), None)

    def installed(self) -> bool:
        return self.unmet() is None


BACKENDS = (
    Backend(
        name="ais_bench",
        title="ais_bench on an Ascend NPU with the OM models ATC builds (the model card)",
        loop=1000,
        module="ais_bench",
        not_installed=f"ais_bench is not installed for {{python}}: {INSTALL_HINTS['ais_bench']}. "
        "Without an NPU use BACKEND=onnxruntime.",
        model="om",
        missing_model="{path}: expected the OM model for batch size {bs}, found no such file "
        "(run test/onnx2om.sh {bs} <chip_name>)",
        builds_with_chip=True,
        foreign=True,
    ),
    Backend(
        name="gpu",
        title="PyTorch CUDA on GPU DEVICE: the path GPU_MODEL names (fp32 the card's column; CUDA graphs per length "
        "bucket)",
        loop=1000,
        module="torch",
        not_installed="no CUDA device torch can use for {python}: {why}",
        model="gpu_model",
        missing_model="{path}: expected the TinyBERT checkpoint folder (CKPT_DIR) for BACKEND=gpu, found no such "
        "folder",
        needs=("torch_cuda",),
    ),
    Backend(
        name="cann",
        title="ONNX Runtime's CANN provider on NPU DEVICE, the simplified static model, no ATC (only when "
        "asked for)",
        loop=1000,
        module="onnxruntime",
        not_installed=f"onnxruntime is not installed for {{python}}: {INSTALL_HINTS['cann']}",
        model="sim",
        missing_model="{path}: expected the simplified ONNX model for BACKEND=cann, found no such file "
        "(run test/pth2onnx.sh {bs})",
        auto=False,
    ),
    Backend(
        name="onnxruntime",
        title="the CPU path ORT_MODEL names (ONNX Runtime; OpenVINO for bf16)",
        loop=100,
        module="",
        not_installed=f"onnxruntime is not installed for {{python}} ({INSTALL_HINTS['onnxruntime']})",
        model="ort_model",
    ),
    Backend(
        name="onnxruntime-gpu",
        title="ONNX Runtime's CUDA/TensorRT providers (perf_gpu.sh without trtexec)",
        loop=1000,
        module="onnxruntime",
        not_installed="onnxruntime-gpu is not installed for {python}",
        model="sim",
        auto=False,
        choosable=False,
    ),
)


@dataclass(frozen=True)
class RunPath:
    """One way of running the model that the benchmark measures; the project's paths are ORT_MODEL values."""

    row: str  # the benchmark's row label
    name: str  # the ORT_MODEL value for project paths; a descriptive key otherwise
    title: str
    runtime: str  # a RUNTIMES name
    model: str  # a MODEL_FILES kind, or CHECKPOINT
    precision: str = "fp32"  # fp32, int8, bf16, fp16: which roofline, and which gate
    # project: ORT_MODEL's; card: the card's static path; variant: a project path varied; baseline / peer: the reference /
    # another runtime at its best (gpu-baseline / gpu-peer: PyTorch on the GPU); gpu-project: GPU_MODEL's; gpu: ORT's.
    role: str = "project"
    batching: str = "tight"  # tight: length-bucketed; gears: bucketed at the Ascend gears; off: the card's
    needs: tuple[str, ...] = ()  # what the machine must have (capabilities.NEEDS), else the row is skipped
    options: tuple[tuple[str, object], ...] = ()  # runtime options (requests, hint, providers)
    overlapped: bool = False  # the runtime's own asynchronous queue, not the runner's requests
    cls_only: bool = False  # the last layer computed at [CLS] only: fewer FLOPs
    variant_of: str = ""  # for variants: the project path it varies
    whole_batches: bool = False  # a project row that runs each batch in one call, not CALL_TOKENS-sized calls
    why: str = ""  # for README: why a user would pick it

    @property
    def splits_calls(self) -> bool:
        """Runs each length-bucketed batch as calls of CALL_TOKENS positions (the project's rows; the
        baseline and the peers take the batches as they come)."""
        return self.role in ("project", "variant") and self.batching != "off" and not self.whole_batches

    @property
    def on_gpu(self) -> bool:
        """Computes on a GPU: the benchmark's GPU rows (--no_gpu skips them), no CPU roofline."""
        return self.role == "gpu" or runtime(self.runtime).gpu

    @property
    def gate(self) -> str | None:
        """exact: within the export tolerance of PyTorch; reduced: the reduced-precision gate; None: not gated."""
        if self.role in UNGATED_ROLES:
            return None
        return "exact" if self.precision == "fp32" else "reduced"


UNGATED_ROLES = ("baseline", "peer", "gpu", "gpu-baseline", "gpu-peer")
_FAST = dict(model="fast", cls_only=True)
_OV_THROUGHPUT = (("hint", "THROUGHPUT"),)
_TORCH_PEER = dict(runtime="pytorch-peer", model=CHECKPOINT, role="peer", cls_only=True)  # the PyTorch peers' common fields
_CUDA = dict(runtime="pytorch-cuda", model=CHECKPOINT, role="gpu-project", cls_only=True, needs=("torch_cuda",),
             whole_batches=True)
# PyTorch on the GPU without the project's CUDA graphs: each batch a plain call, as a torch user runs it.
_CUDA_PEER = dict(runtime="pytorch-cuda", model=CHECKPOINT, role="gpu-peer", needs=("torch_cuda",), whole_batches=True,
                  cls_only=True)
PATHS = (
    RunPath(
        row="A",
        name="pytorch-eager",
        title="PyTorch eager, padded to 64 (the card's pth path)",
        runtime="pytorch",
        model=CHECKPOINT,
        role="baseline",
        batching="off",
    ),
    RunPath(
        row="B",
        name="static",
        title="ONNX Runtime, the card's static simplified model, padded",
        runtime="onnxruntime",
        model="sim",
        role="card",
        batching="off",
        why="the model card's model: every batch padded to 64, the last one filled",
    ),
    RunPath(
        row="C",
        name="fast",
        title="ONNX Runtime fp32, last layer at [CLS] only, length-bucketed, REQUESTS calls in flight",
        runtime="onnxruntime",
        **_FAST,
        why="the default: PyTorch's logits within 1e-4, several times the card's speed",
    ),
    RunPath(
        row="C1",
        name="fast-requests1",
        title="as C, one request on all threads (REQUESTS=1)",
        runtime="onnxruntime",
        **_FAST,
        role="variant",
        variant_of="fast",
        options=(("requests", 1),),
    ),
    RunPath(
        row="C16",
        name="fast-gears",
        title="as C, buckets at the gears 16/32/48/64 instead of tight",
        runtime="onnxruntime",
        **_FAST,
        role="variant",
        variant_of="fast",
        batching="gears",
    ),
    RunPath(
        row="Cw",
        name="fast-whole-batches",
        title="as C, each length-bucketed batch in one call (CALL_TOKENS=0)",
        runtime="onnxruntime",
        **_FAST,
        role="variant",
        variant_of="fast",
        whole_batches=True,
    ),
    RunPath(
        row="D",
        name="int8",
        title="ONNX Runtime dynamic int8 of C, length-bucketed, requests as C",
        runtime="onnxruntime",
        model="int8",
        precision="int8",
        cls_only=True,
        why="int8 weights, activations quantized per call: gated on dev",
    ),
    RunPath(
        row="Dw",
        name="int8-whole-batches",
        title="as D, each length-bucketed batch in one call (CALL_TOKENS=0)",
        runtime="onnxruntime",
        model="int8",
        precision="int8",
        role="variant",
        variant_of="int8",
        cls_only=True,
        whole_batches=True,
    ),
    RunPath(
        row="S",
        name="int8_static",
        title="ONNX Runtime static int8 of C (calibrated QDQ), length-bucketed, requests as C",
        runtime="onnxruntime",
        model="int8_static",
        precision="int8",
        cls_only=True,
        needs=("calibration",),
        why="int8 with activation ranges calibrated on training data (CALIB_FILE): gated on dev",
    ),
    RunPath(
        row="Bf",
        name="bf16",
        title="OpenVINO bf16 on C's model, length-bucketed, requests as C",
        runtime="openvino-bf16",
        model="fast",
        precision="bf16",
        cls_only=True,
        needs=("openvino", "native_bf16"),
        why="bf16 on CPUs that compute it natively (AVX512-BF16, AMX): gated on dev",
    ),
    RunPath(
        row="V8",
        name="openvino_int8",
        title="OpenVINO int8 (NNCF, as OV8) of C's model, length-bucketed, requests and calls " "as C",
        runtime="openvino",
        model="ov_int8",
        precision="int8",
        cls_only=True,
        needs=("openvino", "nncf", "calibration"),
        why="OpenVINO's int8 engine (oneDNN: VNNI, AMX) with the project's batching: gated on dev",
    ),
    RunPath(
        row="OV",
        name="openvino-fp32",
        title="OpenVINO fp32 on C's model, LATENCY hint",
        runtime="openvino",
        **_FAST,
        role="peer",
        needs=("openvino",),
        options=(("requests", 1),),
    ),
    RunPath(
        row="OVt",
        name="openvino-fp32-throughput",
        title="OpenVINO fp32 on C's model, THROUGHPUT hint, async requests",
        runtime="openvino",
        **_FAST,
        role="peer",
        needs=("openvino",),
        options=_OV_THROUGHPUT,
        overlapped=True,
    ),
    RunPath(
        row="OVb",
        name="openvino-bf16",
        title="OpenVINO bf16 on C's model, LATENCY hint",
        runtime="openvino-bf16",
        model="fast",
        precision="bf16",
        role="peer",
        cls_only=True,
        needs=("openvino", "native_bf16"),
        options=(("requests", 1),),
    ),
    RunPath(
        row="OVbt",
        name="openvino-bf16-throughput",
        title="OpenVINO bf16 on C's model, THROUGHPUT hint, async requests",
        runtime="openvino-bf16",
        model="fast",
        precision="bf16",
        role="peer",
        cls_only=True,
        needs=("openvino", "native_bf16"),
        options=_OV_THROUGHPUT,
        overlapped=True,
    ),
    RunPath(
        row="OV8",
        name="openvino-int8",
        title="OpenVINO int8 static (NNCF, transformer preset) of C's model, LATENCY hint",
        runtime="openvino",
        model="ov_int8",
        precision="int8",
        role="peer",
        cls_only=True,
        needs=("openvino", "nncf", "calibration"),
        options=(("requests", 1),),
    ),
    RunPath(
        row="OV8t",
        name="openvino-int8-throughput",
        title="OpenVINO int8 static (NNCF, transformer preset) of C's model, " "THROUGHPUT hint, async requests",
        runtime="openvino",
        model="ov_int8",
        precision="int8",
        role="peer",
        cls_only=True,
        needs=("openvino", "nncf", "calibration"),
        options=_OV_THROUGHPUT,
        overlapped=True,
    ),
    RunPath(
        row="PTb",
        name="pytorch-bf16",
        title="PyTorch eager under bf16 autocast, last layer at [CLS] only, length-bucketed",
        precision="bf16",
        **_TORCH_PEER,
        needs=("torch", "native_bf16"),
        options=(("precision", "bf16"), ("cls_only", True)),
    ),
    RunPath(
        row="PTc",
        name="pytorch-compile",
        title="PyTorch torch.compile (Inductor, frozen weights) fp32, last layer at [CLS] " "only, length-bucketed",
        **_TORCH_PEER,
        needs=("torch", "cxx"),
        options=(("compile", True), ("cls_only", True)),
    ),
    RunPath(
        row="PTcb",
        name="pytorch-compile-bf16",
        title="PyTorch torch.compile (Inductor, frozen weights) under bf16 autocast, "
        "last layer at [CLS] only, length-bucketed",
        precision="bf16",
        **_TORCH_PEER,
        needs=("torch", "cxx", "native_bf16"),
        options=(("compile", True), ("precision", "bf16"), ("cls_only", True)),
    ),
    RunPath(
        row="PTcbm",
        name="pytorch-compile-bf16-max-autotune",
        title="PyTorch torch.compile mode max-autotune (Inductor's C++ GEMM templates, AMX where the CPU has it; "
        "frozen weights) under bf16 autocast, last layer at [CLS] only, length-bucketed",
        precision="bf16",
        **_TORCH_PEER,
        needs=("torch", "cxx", "native_bf16"),
        options=(("compile", True), ("compile_mode", "max-autotune"), ("precision", "bf16"), ("cls_only", True)),
    ),
    RunPath(
        row="PTq8",
        name="pytorch-compile-int8",
        title="PyTorch torchao int8 (dynamic activations, int8 weights) under torch.compile (Inductor, frozen "
        "weights), last layer at [CLS] only, length-bucketed",
        precision="int8",
        **_TORCH_PEER,
        needs=("torch", "cxx", "torchao"),
        options=(("compile", True), ("quantize", "int8"), ("cls_only", True)),
    ),
    RunPath(
        row="E",
        name="cuda-fp32",
        title="ONNX Runtime CUDA fp32, length-bucketed",
        runtime="onnxruntime",
        model="dynamic",
        role="gpu",
        needs=("cuda",),
        options=(("providers", (PROVIDERS["cuda"],)), ("requests", 1)),
    ),
    RunPath(
        row="F",
        name="tensorrt-fp16",
        title="ONNX Runtime TensorRT fp16, length-bucketed",
        runtime="onnxruntime",
        model="dynamic",
        precision="fp16",
        role="gpu",
        needs=("tensorrt",),
        options=(
            ("providers", ((PROVIDERS["tensorrt"], {"trt_fp16_enable": True}), PROVIDERS["cuda"])),
            ("requests", 1),
        ),
    ),
  RunPath(
        row="G",
        name="gpu-fp32",
        title="PyTorch CUDA fp32 (TF32 off), last layer at [CLS] only, length-bucketed, a CUDA graph per shape",
        **_CUDA,
        why="the card's GPU column: fp32, PyTorch's logits within 1e-4",
    ),
    RunPath(
        row="Gt",
        name="gpu-tf32",
        title="as G with TF32 matrix multiplies (10-bit mantissa inputs, fp32 accumulation)",
        **_CUDA,
        precision="tf32",
        options=(("precision", "tf32"),),
        why="fp32 weights and activations, the matrix multiplies on TF32 tensor cores: gated on dev",
    ),
    RunPath(
        row="Gh",
        name="gpu-fp16",
        title="as G in fp16 (weights and activations; the mask built in fp16)",
        **_CUDA,
        precision="fp16",
        options=(("precision", "fp16"),),
        why="half the memory traffic and fp16 tensor cores: gated on dev",
    ),
    RunPath(
        row="Gb",
        name="gpu-bf16",
        title="as G in bf16",
        **dict(_CUDA, needs=("torch_cuda", "cuda_bf16")),
        precision="bf16",
        options=(("precision", "bf16"),),
        why="fp32's range at fp16's speed, on GPUs with bf16 (compute capability 8.0+): gated on dev",
    ),
    RunPath(
        row="Ghc",
        name="gpu-fp16-compiled",
        title="as Gh under torch.compile mode max-autotune, one compiled shape per (rows, length) (compile time "
        "kept out of the passes)",
        **_CUDA,
        precision="fp16",
        options=(("precision", "fp16"), ("compile_mode", "max-autotune")),
        why="Inductor's tuned kernels and its own CUDA graphs; minutes of compiling per shape: gated on dev",
    ),
)

GPU_PEERS = (
    RunPath(
        row="GA",
        name="gpu-eager-fp32",
        title="PyTorch eager fp32 on the GPU (TF32 off, PyTorch's default), the whole model, length-bucketed: "
        "the GPU rows' baseline",
        **dict(_CUDA_PEER, role="gpu-baseline", cls_only=False),
        options=(("graphs", False), ("cls_only", False)),
    ),
    RunPath(
        row="GAh",
        name="gpu-eager-fp16",
        title="PyTorch eager fp16 on the GPU, last layer at [CLS] only, length-bucketed",
        **_CUDA_PEER,
        precision="fp16",
        options=(("graphs", False), ("precision", "fp16")),
    ),
    RunPath(
        row="GPc",
        name="gpu-compile-fp16",
        title="PyTorch torch.compile (mode default, Inductor, torch's dynamic shapes) fp16 on the GPU, last layer "
        "at [CLS] only, length-bucketed",
        **_CUDA_PEER,
        precision="fp16",
        options=(("precision", "fp16"), ("compile_mode", "default"), ("dynamic", None)),
    ),
    RunPath(
        row="GPcm",
        name="gpu-compile-fp16-max-autotune",
        title="PyTorch torch.compile mode max-autotune (Inductor's tuned kernels and CUDA graphs, torch's dynamic "
        "shapes) fp16 on the GPU, last layer at [CLS] only, length-bucketed",
        **_CUDA_PEER,
        precision="fp16",
        options=(("precision", "fp16"), ("compile_mode", "max-autotune"), ("dynamic", None)),
    ),
)
PATHS += GPU_PEERS

# The GPU_MODEL=auto order, fastest first; the last (fp32) is the fallback, which needs no gate record.
GPU_AUTO_ORDER = ("gpu-fp16", "gpu-bf16", "gpu-tf32", "gpu-fp32")
GPU_AUTO_WHY = ("fp16 and bf16 run on the tensor cores at twice TF32's rate, fp16 first for its longer mantissa; "
                "the compiled path only where the benchmark measured it fastest on this GPU (results/gpu_speed.py), which "
                "then orders them all")


@dataclass(frozen=True)
class AutoOrder:
    """Which project paths ORT_MODEL=auto tries on some CPU classes, fastest first; the last is the fallback."""

    cpu_classes: tuple[str, ...]  # capabilities' cpu_class values; () = every class no other entry names
    paths: tuple[str, ...]  # ORT_MODEL values
    why: str


AUTO_ORDERS = (
    AutoOrder(
        cpu_classes=("AMX", "AVX-512+BF16", "AVX-512+VNNI+BF16"),
        paths=("int8", "int8_static", "bf16", "fast"),
        why="dynamic int8 (D) is the fastest gated path in the benchmark; bf16 only here, where the CPU computes "
        "it natively",
    ),
    AutoOrder(
        cpu_classes=(),
        paths=("int8", "int8_static", "fast"),
        why="dynamic int8 (D) is the fastest gated path in the benchmark, static int8 (S) next; fp32 last",
    ),
)


# ---------------------------------------------------------------- lookups


def alternatives(names) -> str:
    names = list(names)
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def runtime(name: str) -> Runtime:
    for candidate in RUNTIMES:
        if candidate.name == name:
            return candidate
    raise UsageError(f"expected a runtime among {', '.join(r.name for r in RUNTIMES)}, got {name!r}")


def backend(name: str) -> Backend:
    for candidate in BACKENDS:
        if candidate.name == name and candidate.choosable:
            return candidate
    raise UsageError(f"expected BACKEND {alternatives(['auto'] + backend_names())}, got {name!r}")


def foreign(backend_name: str) -> bool:
    """The backend is another tool (ais_bench): its printed lines are all it leaves."""
    return any(b.foreign for b in BACKENDS if b.name == backend_name)


def backend_names() -> list[str]:
    return [b.name for b in BACKENDS if b.choosable]


def ort_models() -> list[str]:
    """The values of ORT_MODEL: the project's paths, the card's, and auto."""
    return [p.name for p in PATHS if p.role in ORT_MODEL_ROLES] + [AUTO]


def auto_order(cpu_class: str) -> AutoOrder:
    """The entry of AUTO_ORDERS for this CPU class (the catch-all entry for classes none names)."""
    named = [entry for entry in AUTO_ORDERS if cpu_class in entry.cpu_classes]
    return named[0] if named else next(entry for entry in AUTO_ORDERS if not entry.cpu_classes)


def run_path(name: str) -> RunPath:
    """A path by its ORT_MODEL value or benchmark key."""
    for candidate in PATHS:
        if name in (candidate.name, candidate.row):
            return candidate
    raise UsageError(f"expected ORT_MODEL {alternatives(ort_models())}, got {name!r}")


def gpu_models() -> list[str]:
    """The values of GPU_MODEL: the GPU paths, and auto."""
    return [p.name for p in PATHS if p.role == "gpu-project"] + [AUTO]


def gpu_path(gpu_model: str) -> RunPath:
    """The GPU path a GPU_MODEL value names (auto names none until it is resolved)."""
    for candidate in PATHS:
        if candidate.role == "gpu-project" and candidate.name == gpu_model:
            return candidate
    raise UsageError(f"expected GPU_MODEL {alternatives(gpu_models())}, got {gpu_model!r}"
                     + (" unresolved (runtimes.route.resolve_gpu_model first)" if gpu_model == AUTO else ""))


def project_path(ort_model: str) -> RunPath:
    """The project path an ORT_MODEL value names (auto names none until it is resolved)."""
    if ort_model == AUTO:
        raise UsageError("ORT_MODEL=auto: expected it resolved to a path first (runtimes.route.resolve_ort_model), "
                         "got it unresolved")
    for candidate in PATHS:
        if candidate.role in ORT_MODEL_ROLES and candidate.name == ort_model:
            return candidate
    raise UsageError(f"expected ORT_MODEL {alternatives(ort_models())}, got {ort_model!r}")


def loop_default(backend_name: str) -> int:
    for candidate in BACKENDS:
        if candidate.name == backend_name:
            return candidate.loop
    raise UsageError(f"expected a backend among {', '.join(b.name for b in BACKENDS)} for the LOOP default, "
                     f"got {backend_name!r}")


def loop_defaults() -> tuple[tuple[str, str], ...]:
    """(backend, LOOP default) for the settings table."""
    return tuple((b.name, str(b.loop)) for b in BACKENDS)


# ---------------------------------------------------------------- needs

CALIBRATION = "calibration"  # the need a calibration file (CALIB_FILE) meets: the run's input, not the machine's
# How that need is judged: not at all (its model is exported already), met by a file named (the export that reads
# it comes later), or met by a file that exists (an export about to read it).
CALIBRATION_JUDGED = ("ignored", "named", "present")


def unmet_needs(path: RunPath, calibration: str = "ignored", calibration_file: str | None = None) -> Iterator[str]:
    """Why `path` cannot run here, a reason per unmet need in the order of its needs, each checked only when the
    one before has been taken: the machine's by capabilities, the calibration file as `calibration` says."""
    expect(calibration in CALIBRATION_JUDGED, UsageError,
           f"expected calibration {alternatives(CALIBRATION_JUDGED)}, got {calibration!r}")
    return (why for why in (_unmet(need, calibration, calibration_file) for need in path.needs) if why)


def _unmet(need: str, calibration: str, calibration_file: str | None) -> str | None:
    if need != CALIBRATION:
        return current().unmet(need)
    if calibration == "named" and not calibration_file:
        return "no calibration file (CALIB_FILE)"
    if calibration == "present" and (calibration_file is None or not os.path.isfile(calibration_file)):
        return f"no calibration file (CALIB_FILE: {'none given' if calibration_file is None else calibration_file})"
    return None


# ---------------------------------------------------------------- model files


@dataclass(frozen=True)
class Request:
    """The settings that decide which model file a step runs."""

    model_dir: str = default("MODEL_DIR")
    ort_model: str = default("ORT_MODEL")
    dynamic_dims: str = default("DYNAMIC_DIMS")
    chip_name: str = ""  # given: the step builds the OM models itself (eval_all.sh with CHIP_NAME)
    ckpt_dir: str = field(default=default("CKPT_DIR"))
    gpu_model: str = field(default=default("GPU_MODEL"))


def model_file(path: str, model_dir: str = ".", batch_size: int | None = None, ckpt_dir: str | None = None) -> str:
    """The model file (or checkpoint folder) a path runs."""
    kind = run_path(path).model
    if kind == CHECKPOINT:
        return ckpt_dir or default("CKPT_DIR")
    return model_path(kind, model_dir, batch_size)


def backend_model(name: str, request: Request, batch_size: int | None) -> str:
    """The model file backend `name` runs for `batch_size` under these settings."""
    entry = next((b for b in BACKENDS if b.name == name), None) or backend(name)
    kind = entry.model
    if kind == "ort_model":
        return model_file(project_path(request.ort_model).name, request.model_dir, batch_size)
    if kind == "gpu_model":  # every GPU path runs the checkpoint itself
        return request.ckpt_dir
    if kind == "om":
        kind = "om_gears" if request.dynamic_dims else "om"
    return model_path(kind, request.model_dir, batch_size)
