"""CUDA devices: the ones torch sees (torch imported only where an NVIDIA driver is), or a faked one, and why there
is none; named apart from ONNX Runtime's CUDA provider."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache

import tinybert.capabilities.fake as fake
from tinybert.capabilities.packages import TORCH_CUDA, hidden, install_hint
from tinybert.errors import BackendUnavailableError, UsageError

GPU_NEEDS = (TORCH_CUDA, "cuda_bf16")  # a CUDA device torch can use; one that computes bf16 (compute capability 8+)
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
        clock = _smi_max_clock_mhz(pci_bus_id(props)) or (torch_clock / 1000.0 if torch_clock else None)
        found.append(Gpu(i, props.name, (props.major, props.minor), multiprocessors=props.multi_processor_count,
                         clock_mhz=clock))
    return tuple(found)


def pci_bus_id(props) -> str | None:
    """The device's PCI bus id as nvidia-smi names it (domain:bus:device.function): torch's index counts only the
    devices CUDA_VISIBLE_DEVICES (or Ray) shows this process, nvidia-smi's counts them all."""
    try:
        return f"{props.pci_domain_id:08X}:{props.pci_bus_id:02X}:{props.pci_device_id:02X}.0"
    except AttributeError:  # a torch without them: its UUID, which nvidia-smi also takes
        uuid = str(getattr(props, "uuid", "") or "")
        return (uuid if uuid.startswith("GPU-") else f"GPU-{uuid}") if uuid else None


def _smi_max_clock_mhz(bus_id: str | None) -> float | None:
    """nvidia-smi's maximum SM clock of the GPU at PCI `bus_id`, or None where nvidia-smi is missing or says nothing
    usable."""
    import shutil
    import subprocess

    if bus_id is None or not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", f"--id={bus_id}", "--query-gpu=clocks.max.sm",
                              "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.strip()
        return float(out.splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def gpus() -> tuple:
    """The CUDA devices this process should use: a faked one, none where torch_cuda (or torch) is hidden, else
    torch's own."""
    if hidden() & {TORCH_CUDA, "torch"}:
        return ()
    faked_names = fake.fake_gpu_names()
    if faked_names:  # named as faked wherever they are shown or recorded, so no figure passes for a real one's
        return tuple(Gpu(i, f"{name} (faked: computed on the CPU)", faked=True, **FAKED_GPU_SPEC)
                     for i, name in enumerate(faked_names))
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


def gpu_unmet(need: str, device: int = 0) -> str | None:
    """Why `need` (GPU_NEEDS) is not met on CUDA device `device` (DEVICE), or None; named apart from ONNX Runtime's
    CUDA provider (need cuda)."""
    found = gpus()
    if found:
        chosen = found[device] if 0 <= device < len(found) else None
        if chosen is None:
            return f"DEVICE {device}: expected a CUDA device id below {len(found)}, got {device}"
        if need == "cuda_bf16" and not chosen.bf16:
            return f"{chosen.name} (compute capability {'.'.join(map(str, chosen.capability))}) has no bf16"
        return None
    hidden_here = hidden() & {TORCH_CUDA, "torch"}
    if hidden_here:
        return f"{', '.join(sorted(hidden_here))} treated as not installed here"
    if importlib.util.find_spec("torch") is None:
        return f"torch is not installed: {install_hint(TORCH_CUDA)}"
    if not nvidia_driver_present():
        return f"no NVIDIA driver here (none of {', '.join(NVIDIA_DRIVER_FILES)})"
    import torch

    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU build: {install_hint(TORCH_CUDA)}"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device (no GPU or no driver)"
