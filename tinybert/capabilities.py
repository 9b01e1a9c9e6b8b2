"""What this machine can do (CPU features, cores, optional packages, ONNX Runtime providers, CUDA devices), read in
one place so every branch can be rehearsed anywhere by faking them (`faked` and the TINYBERT_* variables below)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass, replace
from functools import lru_cache

from tinybert.errors import BackendUnavailableError, UsageError

CPU_PROFILE_ENV = "TINYBERT_CPU_PROFILE"
WITHOUT_ENV = "TINYBERT_WITHOUT"
# A device name (e.g. "NVIDIA H200") makes the GPU branches run on a machine without one: the CUDA runtime then
# computes on the CPU and only the calls that need a real device (graphs, pinned memory, streams) are left out.
FAKE_GPU_ENV = "TINYBERT_FAKE_GPU"

# The /proc/cpuinfo flags that decide which matrix-multiply kernels the runtimes pick.
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
_AVX512 = ("avx2", "fma", "avx512f", "avx512_vnni")
PROFILES = {
    "pre_avx2": frozenset(),  # an x86-64 server before AVX2: no SIMD int8 dot product
    "avx2": frozenset({"avx2", "fma"}),  # AMD Zen 2/3, Intel Haswell-Broadwell
    "avx_vnni": frozenset({"avx2", "fma", "avx_vnni"}),  # Intel Alder Lake and later clients
    "avx512_vnni": frozenset(_AVX512),  # Intel Cascade Lake, Ice Lake
    "zen4": frozenset(_AVX512 + ("avx512_bf16",)),  # AMD Zen 4/5: bf16 dot products, no AMX
    "amx": frozenset(_AVX512 + ("avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")),  # Sapphire Rapids
}
INTEL, AMD = "GenuineIntel", "AuthenticAMD"
PROFILE_VENDORS = {"pre_avx2": INTEL, "avx2": AMD, "avx_vnni": INTEL, "avx512_vnni": INTEL, "zen4": AMD, "amx": INTEL}
PROVIDERS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider", "cann": "CANNExecutionProvider"}
_ONNXRUNTIME_GPU = "pip install onnxruntime-gpu on a GPU machine"
# What to install, per optional package or provider (also the names `without` accepts).
INSTALL_HINTS = {
    "openvino": "pip install openvino (see requirements.txt)",
    "nncf": "pip install nncf (see requirements.txt)",
    "torch": "pip install torch transformers",
    "torchao": "pip install torchao (see requirements.txt)",
    "onnxruntime": "pip install onnxruntime",
    "ais_bench": "install ais_bench from https://gitee.com/ascend/tools/tree/master/ais-bench_workload/tool/ais_bench "
                 "on an Ascend NPU server with CANN (see README.md)",
    "cann": "pip install onnxruntime-cann (needs the CANN toolkit)",
    "cuda": _ONNXRUNTIME_GPU,
    "tensorrt": _ONNXRUNTIME_GPU,
    "torch_cuda": "a CUDA build of torch and an NVIDIA GPU with its driver (on Linux x86-64, pip install torch "
                  "brings the CUDA build)",
}
PACKAGES = ("openvino", "nncf", "torch", "torchao", "onnxruntime")  # recorded in Capabilities.packages


@dataclass(frozen=True)
class Capabilities:
    flags: frozenset  # the FLAGS this CPU (or the faked profile) has
    physical_cores: int
    logical_cpus: int
    packages: frozenset  # the PACKAGES installed and not hidden
    ort_providers: tuple  # ONNX Runtime's available execution providers, hidden ones removed
    profile: str | None = None  # the faked CPU profile; None: this CPU's own flags
    hidden: frozenset = frozenset()  # packages and provider names treated as not installed
    vendor: str = ""  # /proc/cpuinfo's vendor_id (the faked profile's under a profile)
    fake_gpu: str | None = None  # a faked CUDA device's name (faked(gpu=...)); None: the environment decides
    faked_kernels: tuple = ()  # (KERNEL_CHECKS name, outcome) pairs from faked(kernels=...): None works, else why not

    @property
    def cpu_class(self) -> str:
        f = self.flags
        if {"amx_tile", "amx_bf16"} <= f or {"amx_tile", "amx_int8"} <= f:
            return "AMX"
        if "avx512f" in f:
            return "AVX-512" + ("+VNNI" if "avx512_vnni" in f else "") + ("+BF16" if "avx512_bf16" in f else "")
        if "avx2" in f:
            return "AVX2+VNNI" if "avx_vnni" in f else "AVX2"
        return "pre-AVX2"

    @property
    def native_bf16(self) -> bool:
        """The CPU computes bf16 dot products itself (AVX512-BF16 or AMX), not by conversion to fp32."""
        return bool(self.flags & {"avx512_bf16", "amx_bf16"})

    @property
    def int8_dot_product(self) -> str:
        """The int8 dot-product instructions here: AMX, VNNI, else AVX2's u8 x s8 multiply-add."""
        if "amx_int8" in self.flags:
            return "AMX-INT8"
        if self.flags & {"avx512_vnni", "avx_vnni"}:
            return "VNNI"
        return "AVX2 u8s8 (no VNNI)" if "avx2" in self.flags else "no SIMD int8 dot product"

    def features_for(self, precision: str) -> str:
        """The instructions a matrix multiply of this precision can use here (fp32, bf16 or int8)."""
        if precision.startswith("int8"):
            return self.int8_dot_product
        if precision == "bf16":
            if "amx_bf16" in self.flags:
                return "AMX-BF16"
            return "AVX512-BF16" if "avx512_bf16" in self.flags else "no native bf16 (emulated)"
        if "avx512f" in self.flags:
            return "AVX-512 FMA"
        return "AVX2 FMA" if {"avx2", "fma"} <= self.flags else "SSE"

    def has(self, package: str) -> bool:
        return package in self.packages

    @property
    def gpu_providers(self) -> tuple:
        return tuple(p for p in self.ort_providers if p in (PROVIDERS["cuda"], PROVIDERS["tensorrt"]))

    @property
    def has_cann(self) -> bool:
        return PROVIDERS["cann"] in self.ort_providers

    def unmet(self, need: str) -> str | None:
        """Why a registry need (a package, native bf16, a GPU or NPU provider) is not met here, or None."""
        if need in PACKAGES:
            hidden = " (treated as not installed here)" if need in self.hidden else ""
            if not self.has(need):
                return f"{need} is not installed{hidden}: {INSTALL_HINTS.get(need, '')}"
            return self.kernel_fault("torchao_int8") if need == "torchao" else None
        if need == "native_bf16":
            return None if self.native_bf16 else (f"this CPU ({self.cpu_class}) has no native bf16 "
                                                  "(no avx512_bf16 or amx_bf16 flag)")
        if need == "cxx":  # torch.compile's Inductor builds C++ kernels
            import shutil

            compiler = os.environ.get("CXX") or "c++"
            return None if shutil.which(compiler) else f"no C++ compiler ({compiler}) for torch.compile's Inductor"
        if need in GPU_NEEDS:
            return gpu_unmet(need)
        if need in PROVIDERS:
            return None if PROVIDERS[need] in self.ort_providers else (
                f"this onnxruntime has no {PROVIDERS[need]} (available: {', '.join(self.ort_providers)}); "
                f"{INSTALL_HINTS[need]}")
        return f"unknown need {need!r}"

    def kernel_fault(self, name: str) -> str | None:
        """Why a KERNEL_CHECKS kernel gives wrong results here (the faked outcome where one is in force), or None."""
        faked_outcomes = dict(self.faked_kernels)
        return faked_outcomes[name] if name in faked_outcomes else KERNEL_CHECKS[name]()

    def describe(self) -> str:
        """One line for headers: the class and its flags, the cores, and any faking."""
        flags = " ".join(f for f in FLAGS if f in self.flags) or "none of " + " ".join(FLAGS)
        line = f"{self.cpu_class} ({flags}); {self.physical_cores} physical core(s) / {self.logical_cpus} logical"
        if self.profile:
            line += f"; FAKED CPU profile {self.profile!r}"
        if self.hidden:
            line += f"; treated as not installed: {', '.join(sorted(self.hidden))}"
        return line


# ---------------------------------------------------------------- reading this machine

def _cpuinfo_lines():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            yield from handle
    except OSError:
        return


def cpuinfo_values(key: str) -> list[str]:
    """The values of /proc/cpuinfo's `key` lines, one per logical CPU ([] where there is no /proc/cpuinfo)."""
    values = []
    for line in _cpuinfo_lines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            values.append(value.strip())
    return values


def cpu_flags() -> frozenset:
    """This CPU's FLAGS, as /proc/cpuinfo lists them (none where there is no /proc/cpuinfo)."""
    flags = cpuinfo_values("flags")
    return frozenset(flags[0].split()) & frozenset(FLAGS) if flags else frozenset()


def cpu_vendor() -> str:
    """/proc/cpuinfo's vendor_id ("" where there is none)."""
    return (cpuinfo_values("vendor_id") or [""])[0]


def logical_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def physical_cores() -> int:
    """Physical cores usable by this process (hyper-threads share one core's matrix units)."""
    cores, physical_id, core_id = set(), None, None
    for line in _cpuinfo_lines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical_id = value.strip()
        elif key == "core id":
            core_id = value.strip()
        elif not line.strip() and core_id is not None:
            cores.add((physical_id, core_id))
            physical_id = core_id = None
    logical = logical_cpus()
    return max(1, min(logical, len(cores) or logical))


def _ort_providers() -> tuple:
    if importlib.util.find_spec("onnxruntime") is None:
        return ()
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


def ort_providers() -> tuple:
    """ONNX Runtime's execution providers, asked now (not cached), less the hidden ones."""
    hidden = {PROVIDERS[n] for n in _hidden() if n in PROVIDERS}
    return tuple(p for p in _ort_providers() if p not in hidden) if installed("onnxruntime") else ()


# ---------------------------------------------------------------- faking

def _parse_without(names, source: str) -> frozenset:
    """Package or provider names to hide, checked: a misspelt name must not silently hide nothing."""
    if isinstance(names, str):
        names = names.replace(",", " ").split()
    names = frozenset(n.strip().lower() for n in names if n.strip())
    unknown = sorted(names - set(INSTALL_HINTS) - set(PROVIDERS))
    if unknown:
        raise UsageError(f"{source}: expected names among {', '.join(sorted(set(INSTALL_HINTS) | set(PROVIDERS)))}, "
                         f"got {', '.join(unknown)}")
    return names


def _profile_flags(name: str, source: str) -> frozenset:
    if name not in PROFILES:
        raise UsageError(f"{source}: expected a CPU profile among {', '.join(PROFILES)}, got {name!r}")
    return PROFILES[name]


def _apply(base: Capabilities, profile: str | None, without, gpu: str | None = None, kernels=()) -> Capabilities:
    """`base` with the profile's flags (None: base's own), `without` hidden as well, `gpu` and `kernels` faked."""
    hidden = base.hidden | without
    hidden_providers = {PROVIDERS[n] for n in hidden if n in PROVIDERS}
    return replace(base, flags=base.flags if profile is None else _profile_flags(profile, "profile"),
                   fake_gpu=base.fake_gpu if gpu is None else gpu,
                   faked_kernels=tuple({**dict(base.faked_kernels), **dict(kernels)}.items()),
                   profile=base.profile if profile is None else profile, hidden=hidden,
                   vendor=base.vendor if profile is None else PROFILE_VENDORS[profile],
                   packages=frozenset(p for p in base.packages if p not in hidden),
                   ort_providers=tuple(p for p in base.ort_providers if p not in hidden_providers))


def _env_hidden() -> frozenset:
    return _parse_without(os.environ.get(WITHOUT_ENV, ""), WITHOUT_ENV)


def detect() -> Capabilities:
    """This machine, read now, with the faking the environment asks for (CPU_PROFILE_ENV, WITHOUT_ENV)."""
    real = Capabilities(cpu_flags(), physical_cores(), logical_cpus(),
                        frozenset(p for p in PACKAGES if importlib.util.find_spec(p) is not None), _ort_providers(),
                        vendor=cpu_vendor())
    profile = os.environ.get(CPU_PROFILE_ENV, "").strip() or None
    if profile is not None:
        _profile_flags(profile, CPU_PROFILE_ENV)
    return _apply(real, profile, _env_hidden())


_faked: list[Capabilities] = []  # the in-process fakes in force, innermost last


@lru_cache(maxsize=1)
def _detected() -> Capabilities:
    return detect()


def current() -> Capabilities:
    """What this process should assume: the innermost `faked` block's, else `detect()`'s (read once)."""
    return _faked[-1] if _faked else _detected()


@contextlib.contextmanager
def faked(profile: str | None = None, without=(), gpu: str | None = None, kernels: dict | None = None):
    """In the block `current()` has CPU `profile`, lacks `without`, sees CUDA device `gpu`, and each KERNEL_CHECKS name
    of `kernels` works (None) or fails (its reason). Nests; this process only (env vars for subprocesses)."""
    if profile is not None:
        _profile_flags(profile, "faked(profile=...)")
    unknown = sorted(set(kernels or ()) - set(KERNEL_CHECKS))
    if unknown:
        raise UsageError(f"faked(kernels=...): expected names among {', '.join(KERNEL_CHECKS)}, got {', '.join(unknown)}")
    _faked.append(_apply(current(), profile, _parse_without(without, "faked(without=...)"), gpu, (kernels or {}).items()))
    try:
        yield _faked[-1]
    finally:
        _faked.pop()


# ---------------------------------------------------------------- packages

# Lines torchao's import logs on every CPU (transformers imports it on each model load): its CUDA-only kernels
# absent, and torch deprecating how it registers enums; none of it touches what the pipeline runs.
_IMPORT_NOISE = {"torchao": "Failed to load ", "torchao.kernel.intmm": "Warning: Detected no triton",
                 "torch.utils._pytree": "is an Enum subclass and is now natively"}


@lru_cache(maxsize=1)
def quiet_torchao() -> None:
    """Drop `_IMPORT_NOISE` from the logs, once per process, before anything imports torchao."""
    for name, text in _IMPORT_NOISE.items():
        logging.getLogger(name).addFilter(lambda record, text=text: text not in str(record.msg))


# The most an int8 linear layer may be off, as a fraction of its fp32 output's largest value: int8 rounding stays
# well inside it, a kernel that saturates its int16 sums (AVX2 without VNNI, frozen weights) does not.
TORCHAO_MAX_ERROR = 0.05


@lru_cache(maxsize=1)
def torchao_int8_fails() -> str | None:
    """Why torchao's int8 dynamic quantization cannot run on this CPU as the PTq8 row runs it (a small linear layer,
    eager and under torch.compile with frozen weights, tried once against fp32), or None."""
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
    quiet_torchao()
    import torch
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


# Kernels whose numerics depend on the real CPU, each checked by running it once here; faked(kernels=...) fakes them.
KERNEL_CHECKS = {"torchao_int8": torchao_int8_fails}


def _hidden() -> frozenset:
    """Without a full detection (which imports ONNX Runtime): scripts ask this for every step."""
    return _faked[-1].hidden if _faked else _env_hidden()


def installed(package: str) -> bool:
    """The package can be imported here and is not hidden."""
    if package in _hidden():
        return False
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def require(package: str, purpose: str = ""):
    """The imported package, or BackendUnavailableError with what to install."""
    hint = INSTALL_HINTS.get(package, f"pip install {package}")
    needed = f" (needed for {purpose})" if purpose else ""
    if package in _hidden():
        raise BackendUnavailableError(f"{package}: expected it installed{needed}, got none (hidden by "
                                      f"{WITHOUT_ENV} or capabilities.faked); install it: {hint}")
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise BackendUnavailableError(f"{package}: expected it installed{needed}, got {exc}; "
                                      f"install it: {hint}") from None


# ---------------------------------------------------------------- CUDA devices

GPU_NEEDS = ("torch_cuda", "cuda_bf16")  # a CUDA device torch can use; one that computes bf16 (compute capability 8+)
BF16_CAPABILITY = (8, 0)  # Ampere and later have bf16 tensor cores
# A faked GPU's figures (an A100's), its name saying it is faked wherever they are shown.
FAKED_GPU_SPEC = {"capability": BF16_CAPABILITY, "multiprocessors": 108, "clock_mhz": 1410.0}


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    capability: tuple  # (major, minor) compute capability
    faked: bool = False  # a FAKE_GPU_ENV / faked(gpu=...) device: the CUDA runtime computes on the CPU
    multiprocessors: int = 0  # streaming multiprocessors (SMs): the roofline's peak
    clock_mhz: float | None = None  # the highest SM clock reported (nvidia-smi, else torch), None where none is

    @property
    def bf16(self) -> bool:
        return tuple(self.capability) >= BF16_CAPABILITY


def _fake_gpu_name() -> str | None:
    if _faked and _faked[-1].fake_gpu is not None:
        return _faked[-1].fake_gpu or None
    return os.environ.get(FAKE_GPU_ENV, "").strip() or None


NVIDIA_DRIVER_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/dxg")  # dxg: WSL's GPU


def nvidia_driver_present() -> bool:
    """A cheap look before importing torch: every shell step asks which backend to use."""
    return any(os.path.exists(path) for path in NVIDIA_DRIVER_FILES)


@lru_cache(maxsize=1)
def _real_gpus() -> tuple:
    """The CUDA devices torch sees (torch imported only here, and only where an NVIDIA driver is)."""
    if not nvidia_driver_present() or importlib.util.find_spec("torch") is None:
        return ()
    import torch

    if not torch.cuda.is_available():
        return ()
    found = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        torch_clock = getattr(props, "clock_rate", None)  # kHz, where this torch reports it
        found.append(Gpu(i, props.name, (props.major, props.minor), multiprocessors=props.multi_processor_count,
                         clock_mhz=_smi_max_clock_mhz(i) or (torch_clock / 1000.0 if torch_clock else None)))
    return tuple(found)


def _smi_max_clock_mhz(index: int) -> float | None:
    """nvidia-smi's maximum SM clock of GPU `index`, or None where nvidia-smi is missing or says nothing usable."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", f"--id={index}", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.strip()
        return float(out.splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def gpus() -> tuple:
    """The CUDA devices this process should use: a faked one, none where torch_cuda (or torch) is hidden, else
    torch's own."""
    if _hidden() & {"torch_cuda", "torch"}:
        return ()
    fake = _fake_gpu_name()
    if fake is not None:  # named as faked wherever it is shown or recorded, so no figure passes for the real one's
        return (Gpu(0, f"{fake} (faked: computed on the CPU)", faked=True, **FAKED_GPU_SPEC),)
    return _real_gpus()


def gpu(index: int = 0) -> Gpu:
    """CUDA device `index` (DEVICE), or BackendUnavailableError saying why there is none."""
    found = gpus()
    if not found:
        raise BackendUnavailableError(f"expected a CUDA device torch can use, got none: {gpu_unmet('torch_cuda')}")
    if not 0 <= index < len(found):
        raise UsageError(f"DEVICE {index}: expected a CUDA device id below {len(found)} "
                         f"({', '.join(f'{g.index}: {g.name}' for g in found)}), got {index}")
    return found[index]


def gpu_unmet(need: str) -> str | None:
    """Why `need` (GPU_NEEDS) is not met here, or None; named apart from ONNX Runtime's CUDA provider (need cuda)."""
    found = gpus()
    if found:
        if need == "cuda_bf16" and not found[0].bf16:
            return f"{found[0].name} (compute capability {'.'.join(map(str, found[0].capability))}) has no bf16"
        return None
    hidden = _hidden() & {"torch_cuda", "torch"}
    if hidden:
        return f"{', '.join(sorted(hidden))} treated as not installed here"
    if importlib.util.find_spec("torch") is None:
        return f"torch is not installed: {INSTALL_HINTS['torch_cuda']}"
    if not nvidia_driver_present():
        return f"no NVIDIA driver here (none of {', '.join(NVIDIA_DRIVER_FILES)})"
    import torch

    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU build: {INSTALL_HINTS['torch_cuda']}"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device (no GPU or no driver)"
