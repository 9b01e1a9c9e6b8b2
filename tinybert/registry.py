"""The runtimes (each record saying what it is: package, needs, device, roofline chains), the paths a user can
choose with their auto orders, and the BACKEND values; standard library only. The benchmark's rows: bench/rows.py."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import Enum

from tinybert.errors import UsageError
from tinybert.model_kinds import MODEL_KINDS, ModelKind, kind as model_kind

AUTO = "auto"  # the ORT_MODEL value that names no path: runtimes.route.resolve_ort_model picks one
CHECKPOINT = "checkpoint"  # the model kind of the paths that run the .pth checkpoint folder itself
CPU, CUDA, NPU = "cpu", "cuda", "npu"  # where a runtime computes
ORT_MODEL, GPU_MODEL = "ort_model", "gpu_model"  # a backend's model chosen by that setting (Backend.model)


class Role(str, Enum):
    """What a path is for, and what that implies: gated against PyTorch, on a GPU, given REQUESTS, and which
    setting (if any) names it."""

    def __new__(cls, value: str, gated: bool, on_gpu: bool, takes_requests: bool, setting: str = ""):
        member = str.__new__(cls, value)
        member._value_ = value
        member.gated, member.on_gpu, member.takes_requests, member.setting = gated, on_gpu, takes_requests, setting
        return member

    def __str__(self) -> str:  # the value, wherever a role is printed or recorded
        return self.value

    __format__ = str.__format__

    CARD = ("card", True, False, True, "ORT_MODEL")  # the card's static model
    PROJECT = ("project", True, False, True, "ORT_MODEL")  # the project's CPU paths
    VARIANT = ("variant", True, False, True)  # a project path varied (the benchmark's)
    BASELINE = ("baseline", False, False, False)  # the reference the rows compare with: PyTorch eager
    PEER = ("peer", False, False, False)  # another runtime at its documented best
    GPU_PROJECT = ("gpu-project", True, True, True, "GPU_MODEL")  # the project's GPU paths
    ORT_GPU = ("gpu", False, True, False)  # ONNX Runtime's GPU providers
    GPU_BASELINE = ("gpu-baseline", False, True, False)  # PyTorch eager on the GPU
    GPU_PEER = ("gpu-peer", False, True, False)  # PyTorch on the GPU as a torch user runs it


@dataclass(frozen=True)
class Package:
    name: str  # what imports
    install: str  # what to install when it does not


@dataclass(frozen=True)
class NeedCheck:
    """A need a runtime judges itself once its package imports (a kernel's numerics on this CPU)."""

    need: str  # the need it judges
    name: str  # its name for capabilities.faked(kernels=...)
    judge: str  # "module:function": why the need is unmet here, or None


@dataclass(frozen=True)
class Chain:
    """A layer's matrix multiplies at the model's shapes on one engine and precision (bench/shape_graphs.py):
    what a row on this runtime is held against."""

    precision: str  # fp32, tf32, fp16, bf16, int8 or int8_static (the rows whose model is int8_static)
    recipe: str
    build: str  # "module:function"(model, *, precision, threads, requests) -> run(x [M, 312] float32)
    model: str = "weights"  # what `build` gets: the chain's weights, its fp32 "onnx" file, or it as a model kind
    engine: str = ""  # the roofline's name for it; "" = its runtime's
    when: tuple[tuple[str, object], ...] = ()  # options a row's options must hold for this chain to be its own
    needs: tuple[str, ...] = ()  # beyond its runtime's package
    unmet: str = ""  # what to say instead of the need's own reason ({cpu_class})


@dataclass(frozen=True)
class Runtime:
    name: str
    module: str  # the module of its class, imported only when it is opened
    cls: str
    title: str
    package: Package  # what must import for it to open
    extras: tuple[Package, ...] = ()  # what some of its paths import besides (quantizers)
    device: str = CPU  # where it computes: CPU, CUDA (capabilities.gpus) or NPU; a GPU or NPU takes DEVICE
    requests: bool = False  # takes REQUESTS: several calls in flight on one session
    needs: tuple[str, ...] = ()  # what every path on it needs of the machine (capabilities' needs)
    checks: tuple[NeedCheck, ...] = ()
    chains: tuple[Chain, ...] = ()  # its roofline recipes, one per precision
    family: str = ""  # the runtime whose chains its rows are held against too; "" = none

    @property
    def install(self) -> str:
        return self.package.install


_TORCH = Package("torch", "pip install torch transformers")
_OPENVINO = Package("openvino", "pip install openvino (see requirements.txt)")
_ORT_CHAIN = "tinybert.runtimes.onnxruntime:matmul_chain"
_OV_CHAIN = "tinybert.runtimes.openvino:matmul_chain"
_EAGER_CHAIN = "tinybert.runtimes.pytorch:matmul_chain"
_COMPILED_CHAIN = "tinybert.runtimes.torch_peer:matmul_chain"
_CUDA_CHAIN = "tinybert.runtimes.cuda:matmul_chain"
_COMPILED = dict(build=_COMPILED_CHAIN, engine="pytorch-compiled", when=(("compile", True),), needs=("cxx",))
_ON_GPU = "inputs on the device"

RUNTIMES = [
    Runtime(
        name="onnxruntime",
        module="tinybert.runtimes.onnxruntime",
        cls="OrtRuntime",
        title="ONNX Runtime (CPU, or a GPU provider where installed)",
        package=Package("onnxruntime", "pip install onnxruntime"),
        requests=True,
        chains=(
            Chain("fp32", "ONNX Runtime MatMul (MLAS)", _ORT_CHAIN, model="onnx"),
            Chain("int8", "ONNX Runtime dynamic int8 (quantize_int8, as ORT_MODEL=int8)", _ORT_CHAIN, model="int8"),
            Chain("int8_static", "ONNX Runtime static int8 QDQ (quantize_static_int8, as ORT_MODEL=int8_static)",
                  _ORT_CHAIN, model="int8_static"),
        ),
    ),
    Runtime(
        name="openvino",
        module="tinybert.runtimes.openvino",
        cls="OpenVinoRuntime",
        title="OpenVINO on the CPU, fp32",
        package=_OPENVINO,
        extras=(Package("nncf", "pip install nncf (see requirements.txt)"),),
        requests=True,
        needs=("openvino",),
        chains=(
            Chain("fp32", "OpenVINO f32", _OV_CHAIN, model="onnx"),
            Chain("bf16", "OpenVINO INFERENCE_PRECISION_HINT=bf16 (as ORT_MODEL=bf16)", _OV_CHAIN, model="onnx",
                  needs=("native_bf16",),
                  unmet="expected a CPU with native bf16, got {cpu_class} (OpenVINO would silently run f32 here)"),
            Chain("int8", "OpenVINO NNCF static int8 (quantize_nncf_int8, as the OV8 rows)", _OV_CHAIN,
                  model="ov_int8"),
        ),
    ),
    Runtime(
        name="openvino-bf16",
        module="tinybert.runtimes.openvino",
        cls="OpenVinoBf16Runtime",
        title="OpenVINO on the CPU, bf16 where the CPU computes it natively",
        package=_OPENVINO,
        requests=True,
        needs=("openvino", "native_bf16"),
        family="openvino",
    ),
    Runtime(
        name="pytorch",
        module="tinybert.runtimes.pytorch",
        cls="PyTorchRuntime",
        title="PyTorch eager on the .pth checkpoint",
        package=_TORCH,
        chains=(
            Chain("fp32", "PyTorch eager linear", _EAGER_CHAIN),
            Chain("bf16", "PyTorch eager linear under bf16 autocast", _EAGER_CHAIN),
        ),
    ),
    Runtime(
        name="cann",
        module="tinybert.runtimes.cann",
        cls="CannRuntime",
        title="ONNX Runtime's CANN execution provider on an Ascend NPU",
        package=Package("onnxruntime", "pip install onnxruntime-cann (needs the CANN toolkit)"),
        device=NPU,
        needs=("cann",),
    ),
    Runtime(
        name="pytorch-peer",
        module="tinybert.runtimes.torch_peer",
        cls="TorchPeerRuntime",
        title="PyTorch as a user who has torch runs it: eager or torch.compile (Inductor, frozen weights; default "
        "or max-autotune), fp32, bf16 autocast or torchao int8, last layer at [CLS] only",
        package=_TORCH,
        extras=(Package("torchao", "pip install torchao (see requirements.txt)"),),
        needs=("torch",),
        checks=(NeedCheck("torchao", "torchao_int8", "tinybert.runtimes.torch_peer:torchao_int8_fails"),),
        chains=(
            Chain("fp32", "torch.compile (Inductor, frozen weights) of the linear layers, as the PTc rows", **_COMPILED),
            Chain("bf16", "torch.compile (Inductor, frozen weights) under bf16 autocast, as the PTcb rows", **_COMPILED),
            Chain("int8", "torchao int8 dynamic activation + int8 weight, torch.compile, as PTq8",
                  **dict(_COMPILED, needs=("cxx", "torchao"))),
        ),
        family="pytorch",
    ),
    Runtime(
        name="pytorch-cuda",
        module="tinybert.runtimes.cuda",
        cls="CudaRuntime",
        title="PyTorch on a CUDA GPU: fp32 (TF32 off), TF32, fp16 or bf16, one QKV projection and fused attention, "
        "last layer at [CLS] only, a CUDA graph per (rows, length) shape in one memory pool, int32 ids and lengths "
        "staged through two pinned slots (the next batch gathered while one runs); or torch.compile per shape",
        package=Package("torch", "a CUDA build of torch and an NVIDIA GPU with its driver (on Linux x86-64, pip "
                                 "install torch brings the CUDA build)"),
        device=CUDA,
        needs=("torch_cuda",),
        chains=(
            Chain("fp32", f"PyTorch linear on the GPU, fp32 (TF32 off), {_ON_GPU}", _CUDA_CHAIN),
            Chain("tf32", f"PyTorch linear on the GPU, TF32 tensor cores, {_ON_GPU}", _CUDA_CHAIN),
            Chain("fp16", f"PyTorch linear on the GPU, fp16 tensor cores, {_ON_GPU}", _CUDA_CHAIN),
            Chain("bf16", f"PyTorch linear on the GPU, bf16 tensor cores, {_ON_GPU}", _CUDA_CHAIN,
                  needs=("cuda_bf16",)),
        ),
    ),
]


@dataclass(frozen=True)
class RunPath:
    """One way of running the model: a user's (ORT_MODEL's, GPU_MODEL's, the card's) or a benchmark row."""

    row: str  # the benchmark's row label
    name: str  # the ORT_MODEL or GPU_MODEL value for a user's paths; a descriptive key otherwise
    title: str
    runtime: str  # a RUNTIMES name
    model: str  # a model kind (model_kinds.MODEL_KINDS), or CHECKPOINT
    precision: str = "fp32"  # fp32, tf32, int8, bf16, fp16: which roofline, and which gate
    role: Role = Role.PROJECT
    batching: str = "tight"  # tight: length-bucketed; gears: bucketed at the Ascend gears; off: the card's
    needs: tuple[str, ...] = ()  # what it needs beyond its runtime's needs (capabilities'; "calibration"), else skipped
    options: tuple[tuple[str, object], ...] = ()  # runtime options (requests, hint, providers)
    overlapped: bool = False  # the runtime's own asynchronous queue, not the runner's requests
    cls_only: bool = False  # the last layer computed at [CLS] only: fewer FLOPs
    variant_of: str = ""  # for variants: the project path it varies
    whole_batches: bool = False  # a project row that runs each batch in one call, not CALL_TOKENS-sized calls
    why: str = ""  # for README: why a user would pick it

    @property
    def all_needs(self) -> tuple[str, ...]:
        """Its runtime's needs, its model kind's (what its export needs), then its own."""
        kind_needs = () if self.model == CHECKPOINT else model_kind(self.model).needs
        return tuple(dict.fromkeys(runtime(self.runtime).needs + kind_needs + self.needs))

    @property
    def splits_calls(self) -> bool:
        """Runs each length-bucketed batch as calls of CALL_TOKENS positions (the project's rows; the
        baseline and the peers take the batches as they come)."""
        return self.role in (Role.PROJECT, Role.VARIANT) and self.batching != "off" and not self.whole_batches

    @property
    def on_gpu(self) -> bool:
        """Computes on a GPU: the benchmark's GPU rows (--no_gpu skips them), no CPU roofline."""
        return self.role.on_gpu or runtime(self.runtime).device == CUDA

    @property
    def gate(self) -> str | None:
        """exact: within the export tolerance of PyTorch; reduced: the reduced-precision gate; None: not gated."""
        if not self.role.gated:
            return None
        return "exact" if self.precision == "fp32" else "reduced"


_FAST = dict(model="fast", cls_only=True)
_CUDA = dict(runtime="pytorch-cuda", model=CHECKPOINT, role=Role.GPU_PROJECT, cls_only=True, whole_batches=True)
PATHS = [
    RunPath(
        row="B",
        name="static",
        title="ONNX Runtime, the card's static simplified model, padded",
        runtime="onnxruntime",
        model="sim",
        role=Role.CARD,
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
        row="S",
        name="int8_static",
        title="ONNX Runtime static int8 of C (calibrated QDQ), length-bucketed, requests as C",
        runtime="onnxruntime",
        model="int8_static",
        precision="int8",
        cls_only=True,
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
        why="OpenVINO's int8 engine (oneDNN: VNNI, AMX) with the project's batching: gated on dev",
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
        **_CUDA,
        needs=("cuda_bf16",),
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
]

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
    package: Package | None = None  # a package no runtime brings, and how to install it
    runtime: str = ""  # the runtime that runs its own model kind in this package (cann); "" for a setting's path

    @property
    def runs_paths(self) -> bool:
        """Runs the path a setting (ORT_MODEL, GPU_MODEL) names: what classify and predict can choose among."""
        return self.model in (ORT_MODEL, GPU_MODEL)


def _install(runtime_name: str) -> str:
    return next(r.install for r in RUNTIMES if r.name == runtime_name)


_AIS_BENCH = Package("ais_bench", "install ais_bench from https://gitee.com/ascend/tools/tree/master/ais-bench_workload/"
                                  "tool/ais_bench on an Ascend NPU server with CANN (see README.md)")
BACKENDS = (
    Backend(
        name="ais_bench",
        title="ais_bench on an Ascend NPU with the OM models ATC builds (the model card)",
        loop=1000,
        module="ais_bench",
        not_installed=f"ais_bench is not installed for {{python}}: {_AIS_BENCH.install}. "
        "Without an NPU use BACKEND=onnxruntime.",
        model="om",
        missing_model="{path}: expected the OM model for batch size {bs}, found no such file "
        "(run test/onnx2om.sh {bs} <chip_name>)",
        builds_with_chip=True,
        foreign=True,
        package=_AIS_BENCH,
    ),
    Backend(
        name="gpu",
        title="PyTorch CUDA on GPU DEVICE: the path GPU_MODEL names (fp32 the card's column; CUDA graphs per length "
        "bucket)",
        loop=1000,
        module="torch",
        not_installed="no CUDA device torch can use for {python}: {why}",
        model=GPU_MODEL,
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
        not_installed=f"onnxruntime is not installed for {{python}}: {_install('cann')}",
        model="sim",
        missing_model="{path}: expected the simplified ONNX model for BACKEND=cann, found no such file "
        "(run test/pth2onnx.sh {bs})",
        auto=False,
        runtime="cann",
    ),
    Backend(
        name="onnxruntime",
        title="the CPU path ORT_MODEL names (ONNX Runtime; OpenVINO for bf16)",
        loop=100,
        module="",
        not_installed=f"onnxruntime is not installed for {{python}} ({_install('onnxruntime')})",
        model=ORT_MODEL,
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


# ---------------------------------------------------------------- adding to the registry

def _table(entry) -> list:
    return RUNTIMES if isinstance(entry, Runtime) else MODEL_KINDS if isinstance(entry, ModelKind) else PATHS


@contextlib.contextmanager
def registered(*entries):
    """In the block, these Runtime, ModelKind and RunPath records are in the registry as if written above (a
    runtime's own tests, a plug-in's session); taken out after. A name already taken is a UsageError."""
    added = []
    try:
        for entry in entries:
            expect_new(entry)
            added.append(entry)
            _table(entry).append(entry)
        yield
    finally:
        for entry in added:
            _table(entry).remove(entry)


def expect_new(entry) -> None:
    """A runtime's name, or a path's name and row, not yet in the registry."""
    if isinstance(entry, (Runtime, ModelKind)):
        what = "runtime" if isinstance(entry, Runtime) else "model kind"
        taken = [r.name for r in _table(entry)]
        if entry.name in taken:
            raise UsageError(f"expected a {what} name not among {', '.join(taken)}, got {entry.name!r}")
        return
    if not isinstance(entry, RunPath):
        raise UsageError(f"expected a Runtime, ModelKind or RunPath record, got {type(entry).__name__}")
    runtime(entry.runtime)
    if entry.model != CHECKPOINT:
        model_kind(entry.model)
    taken = [p.name for p in PATHS] + [p.row for p in PATHS]
    if entry.name in taken or entry.row in taken:
        raise UsageError(f"expected a path name and row not among {', '.join(taken)}, got {entry.name!r} "
                         f"({entry.row})")


# ---------------------------------------------------------------- lookups


def alternatives(names) -> str:
    names = list(names)
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def runtime(name: str) -> Runtime:
    for candidate in RUNTIMES:
        if candidate.name == name:
            return candidate
    raise UsageError(f"expected a runtime among {', '.join(r.name for r in RUNTIMES)}, got {name!r}")


def packages() -> dict[str, str]:
    """Each package a runtime, its paths or a backend imports, and what to install for it (the first one named)."""
    found: dict[str, str] = {}
    for package in [p for r in RUNTIMES for p in (r.package, *r.extras)] + [b.package for b in BACKENDS if b.package]:
        found.setdefault(package.name, package.install)
    return found


def need_checks() -> dict[str, NeedCheck]:
    """The needs runtimes judge themselves, by their check's name."""
    return {check.name: check for r in RUNTIMES for check in r.checks}


def install_hint(need: str) -> str | None:
    """What to install for a package, or for a need a runtime has (a CUDA device for the CUDA runtime); None."""
    return packages().get(need) or next((r.install for r in RUNTIMES if need in r.needs and r.device != CPU), None)


def chains() -> list[tuple[str, Chain, Runtime]]:
    """Every roofline chain: its engine, itself, and its runtime."""
    return [(chain.engine or r.name, chain, r) for r in RUNTIMES for chain in r.chains]


def chain(engine: str, precision: str) -> tuple[Chain, Runtime]:
    for name, candidate, owner in chains():
        if (name, candidate.precision) == (engine, precision):
            return candidate, owner
    raise UsageError(f"expected a runtime/precision among {', '.join(f'{n} {c.precision}' for n, c, _ in chains())}, "
                     f"got {engine} {precision}")


def chain_for(path: RunPath) -> tuple[str, Chain] | None:
    """The (engine, chain) a row is held against: its runtime's (or family's) chain at its precision whose options
    it holds, on its device; None where there is none (ONNX Runtime's GPU rows)."""
    precision = "int8_static" if path.model == "int8_static" else path.precision
    options = dict(path.options)
    own = runtime(path.runtime)
    for owner in (own, runtime(own.family)) if own.family else (own,):
        if path.on_gpu != (owner.device == CUDA):
            continue
        for candidate in owner.chains:
            if candidate.precision == precision and all(options.get(k) == v for k, v in candidate.when):
                return candidate.engine or owner.name, candidate
    return None


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


def path_backends() -> tuple[str, ...]:
    """The backends that run a setting's path (classify's and predict's choice)."""
    return tuple(b.name for b in BACKENDS if b.choosable and b.runs_paths)


def ort_models() -> list[str]:
    """The values of ORT_MODEL: the project's paths, the card's, and auto."""
    return [p.name for p in PATHS if p.role.setting == "ORT_MODEL"] + [AUTO]


def auto_order(cpu_class: str) -> AutoOrder:
    """The entry of AUTO_ORDERS for this CPU class (the catch-all entry for classes none names)."""
    named = [entry for entry in AUTO_ORDERS if cpu_class in entry.cpu_classes]
    return named[0] if named else next(entry for entry in AUTO_ORDERS if not entry.cpu_classes)


def run_path(name: str) -> RunPath:
    """A user's path by its ORT_MODEL or GPU_MODEL value, or its row."""
    for candidate in PATHS:
        if name in (candidate.name, candidate.row):
            return candidate
    raise UsageError(f"expected ORT_MODEL {alternatives(ort_models())}, got {name!r}")


def gpu_models() -> list[str]:
    """The values of GPU_MODEL: the GPU paths, and auto."""
    return [p.name for p in PATHS if p.role.setting == "GPU_MODEL"] + [AUTO]


def gpu_path(gpu_model: str) -> RunPath:
    """The GPU path a GPU_MODEL value names (auto names none until it is resolved)."""
    for candidate in PATHS:
        if candidate.role.setting == "GPU_MODEL" and candidate.name == gpu_model:
            return candidate
    raise UsageError(f"expected GPU_MODEL {alternatives(gpu_models())}, got {gpu_model!r}"
                     + (" unresolved (runtimes.route.resolve_gpu_model first)" if gpu_model == AUTO else ""))


def project_path(ort_model: str) -> RunPath:
    """The project path an ORT_MODEL value names (auto names none until it is resolved)."""
    if ort_model == AUTO:
        raise UsageError("ORT_MODEL=auto: expected it resolved to a path first (runtimes.route.resolve_ort_model), "
                         "got it unresolved")
    for candidate in PATHS:
        if candidate.role.setting == "ORT_MODEL" and candidate.name == ort_model:
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
