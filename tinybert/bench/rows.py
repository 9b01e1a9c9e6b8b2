"""The benchmark's own rows: the baseline, variants of the project's paths, peers at their documented best (other
runtimes on the CPU, ONNX Runtime's GPU providers, PyTorch on the GPU); with the registry's paths, its rows."""

from __future__ import annotations

from tinybert import registry
from tinybert.capabilities.packages import PROVIDERS
from tinybert.errors import UsageError
from tinybert.registry import CHECKPOINT, Role, RunPath

_FAST = dict(model="fast", cls_only=True)
_OV_THROUGHPUT = (("hint", "THROUGHPUT"),)
_TORCH_PEER = dict(runtime="pytorch-peer", model=CHECKPOINT, role=Role.PEER, cls_only=True)  # the PyTorch peers' fields
# PyTorch on the GPU without the project's CUDA graphs and fused attention: the model's own modules, as a torch user
# runs them.
_CUDA_PEER = dict(runtime="pytorch-cuda", model=CHECKPOINT, role=Role.GPU_PEER, whole_batches=True, cls_only=True)

BASELINE = RunPath(
    row="A",
    name="pytorch-eager",
    title="PyTorch eager, padded to 64 (the card's pth path)",
    runtime="pytorch",
    model=CHECKPOINT,
    role=Role.BASELINE,
    batching="off",
)
VARIANTS = (
    RunPath(
        row="C1",
        name="fast-requests1",
        title="as C, one request on all threads (REQUESTS=1)",
        runtime="onnxruntime",
        **_FAST,
        role=Role.VARIANT,
        variant_of="fast",
        options=(("requests", 1),),
    ),
    RunPath(
        row="C16",
        name="fast-gears",
        title="as C, buckets at the gears 16/32/48/64 instead of tight",
        runtime="onnxruntime",
        **_FAST,
        role=Role.VARIANT,
        variant_of="fast",
        batching="gears",
    ),
    RunPath(
        row="Cw",
        name="fast-whole-batches",
        title="as C, each length-bucketed batch in one call (CALL_TOKENS=0)",
        runtime="onnxruntime",
        **_FAST,
        role=Role.VARIANT,
        variant_of="fast",
        whole_batches=True,
    ),
    RunPath(
        row="Dw",
        name="int8-whole-batches",
        title="as D, each length-bucketed batch in one call (CALL_TOKENS=0)",
        runtime="onnxruntime",
        model="int8",
        precision="int8",
        role=Role.VARIANT,
        variant_of="int8",
        cls_only=True,
        whole_batches=True,
    ),
)
PEERS = (
    RunPath(
        row="OV",
        name="openvino-fp32",
        title="OpenVINO fp32 on C's model, LATENCY hint",
        runtime="openvino",
        **_FAST,
        role=Role.PEER,
        options=(("requests", 1),),
    ),
    RunPath(
        row="OVt",
        name="openvino-fp32-throughput",
        title="OpenVINO fp32 on C's model, THROUGHPUT hint, async requests",
        runtime="openvino",
        **_FAST,
        role=Role.PEER,
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
        role=Role.PEER,
        cls_only=True,
        options=(("requests", 1),),
    ),
    RunPath(
        row="OVbt",
        name="openvino-bf16-throughput",
        title="OpenVINO bf16 on C's model, THROUGHPUT hint, async requests",
        runtime="openvino-bf16",
        model="fast",
        precision="bf16",
        role=Role.PEER,
        cls_only=True,
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
        role=Role.PEER,
        cls_only=True,
        needs=("nncf", "calibration"),
        options=(("requests", 1),),
    ),
    RunPath(
        row="OV8t",
        name="openvino-int8-throughput",
        title="OpenVINO int8 static (NNCF, transformer preset) of C's model, " "THROUGHPUT hint, async requests",
        runtime="openvino",
        model="ov_int8",
        precision="int8",
        role=Role.PEER,
        cls_only=True,
        needs=("nncf", "calibration"),
        options=_OV_THROUGHPUT,
        overlapped=True,
    ),
    RunPath(
        row="PTb",
        name="pytorch-bf16",
        title="PyTorch eager under bf16 autocast, last layer at [CLS] only, length-bucketed",
        precision="bf16",
        **_TORCH_PEER,
        needs=("native_bf16",),
        options=(("precision", "bf16"), ("cls_only", True)),
    ),
    RunPath(
        row="PTc",
        name="pytorch-compile",
        title="PyTorch torch.compile (Inductor, frozen weights) fp32, last layer at [CLS] " "only, length-bucketed",
        **_TORCH_PEER,
        needs=("cxx",),
        options=(("compile", True), ("cls_only", True)),
    ),
    RunPath(
        row="PTcb",
        name="pytorch-compile-bf16",
        title="PyTorch torch.compile (Inductor, frozen weights) under bf16 autocast, "
        "last layer at [CLS] only, length-bucketed",
        precision="bf16",
        **_TORCH_PEER,
        needs=("cxx", "native_bf16"),
        options=(("compile", True), ("precision", "bf16"), ("cls_only", True)),
    ),
    RunPath(
        row="PTcbm",
        name="pytorch-compile-bf16-max-autotune",
        title="PyTorch torch.compile mode max-autotune (Inductor's C++ GEMM templates, AMX where the CPU has it; "
        "frozen weights) under bf16 autocast, last layer at [CLS] only, length-bucketed",
        precision="bf16",
        **_TORCH_PEER,
        needs=("cxx", "native_bf16"),
        options=(("compile", True), ("compile_mode", "max-autotune"), ("precision", "bf16"), ("cls_only", True)),
    ),
    RunPath(
        row="PTq8",
        name="pytorch-compile-int8",
        title="PyTorch torchao int8 (dynamic activations, int8 weights) under torch.compile (Inductor, frozen "
        "weights), last layer at [CLS] only, length-bucketed",
        precision="int8",
        **_TORCH_PEER,
        needs=("cxx", "torchao"),
        options=(("compile", True), ("quantize", "int8"), ("cls_only", True)),
    ),
    RunPath(
        row="E",
        name="cuda-fp32",
        title="ONNX Runtime CUDA fp32, length-bucketed",
        runtime="onnxruntime",
        model="dynamic",
        role=Role.ORT_GPU,
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
        role=Role.ORT_GPU,
        needs=("tensorrt",),
        options=(
            ("providers", ((PROVIDERS["tensorrt"], {"trt_fp16_enable": True}), PROVIDERS["cuda"])),
            ("requests", 1),
        ),
    ),
    RunPath(
        row="GA",
        name="gpu-eager-fp32",
        title="PyTorch eager fp32 on the GPU (TF32 off, PyTorch's default), the whole model, length-bucketed: "
        "the GPU rows' baseline",
        **dict(_CUDA_PEER, role=Role.GPU_BASELINE, cls_only=False),
        options=(("graphs", False), ("cls_only", False), ("fused", False)),
    ),
    RunPath(
        row="GAh",
        name="gpu-eager-fp16",
        title="PyTorch eager fp16 on the GPU, last layer at [CLS] only, length-bucketed",
        **_CUDA_PEER,
        precision="fp16",
        options=(("graphs", False), ("precision", "fp16"), ("fused", False)),
    ),
    RunPath(
        row="GPc",
        name="gpu-compile-fp16",
        title="PyTorch torch.compile (mode default, Inductor, torch's dynamic shapes) fp16 on the GPU, last layer "
        "at [CLS] only, length-bucketed",
        **_CUDA_PEER,
        precision="fp16",
        options=(("precision", "fp16"), ("compile_mode", "default"), ("dynamic", None), ("fused", False)),
    ),
    RunPath(
        row="GPcm",
        name="gpu-compile-fp16-max-autotune",
        title="PyTorch torch.compile mode max-autotune (Inductor's tuned kernels and CUDA graphs, torch's dynamic "
        "shapes) fp16 on the GPU, last layer at [CLS] only, length-bucketed",
        **_CUDA_PEER,
        precision="fp16",
        options=(("precision", "fp16"), ("compile_mode", "max-autotune"), ("dynamic", None), ("fused", False)),
    ),
)
# The order rows print in: the baseline, each of the user's CPU paths followed by its variants, the CPU peers,
# then the GPU: ONNX Runtime's providers, the user's GPU paths, PyTorch's own.
ORDER = ((Role.BASELINE,), (Role.CARD, Role.PROJECT), (Role.PEER,), (Role.ORT_GPU,), (Role.GPU_PROJECT,),
         (Role.GPU_BASELINE, Role.GPU_PEER))


def rows() -> list[RunPath]:
    """Every row, the registry's paths as they are now (added ones included), in ORDER."""
    every = [BASELINE, *registry.PATHS, *VARIANTS, *PEERS]
    ordered = []
    for roles in ORDER:
        for path in every:
            if path.role in roles:
                ordered += [path] + [v for v in every if v.role == Role.VARIANT and v.variant_of == path.name]
    return ordered


def row(name: str) -> RunPath:
    """A row by its label or name."""
    found = rows()
    for candidate in found:
        if name in (candidate.name, candidate.row):
            return candidate
    raise UsageError(f"expected a benchmark row among {', '.join(p.row for p in found)}, got {name!r}")
