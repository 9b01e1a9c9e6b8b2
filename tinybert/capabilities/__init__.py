"""What this machine can do (cpu, packages and ONNX Runtime providers, gpu), read in one place so every branch
can be rehearsed anywhere by faking them (`faked` and the TINYBERT_* variables of fake)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from functools import lru_cache

from tinybert import registry
from tinybert.capabilities import cpu, fake
from tinybert.capabilities.cpu import AMD, FLAGS, PROFILES, cpuinfo_values, logical_cpus
from tinybert.capabilities.fake import CPU_PROFILE_ENV, FAKE_GPU_ENV, WITHOUT_ENV
from tinybert.capabilities.gpu import FAKED_GPU_SPEC, GPU_NEEDS, Gpu, gpu, gpu_unmet, gpus
from tinybert.capabilities.packages import (PROVIDERS, install_hint, installed, ort_providers, parse_without,
                                            quiet_torchao, require)
from tinybert.errors import UsageError

__all__ = ["AMD", "CPU_PROFILE_ENV", "FAKED_GPU_SPEC", "FAKE_GPU_ENV", "FLAGS", "PROFILES", "PROVIDERS", "WITHOUT_ENV",
           "Capabilities", "Gpu", "cpuinfo_values", "current", "detect", "faked", "gpu", "gpu_unmet", "gpus",
           "install_hint", "installed", "logical_cpus", "ort_providers", "quiet_torchao", "require"]


@dataclass(frozen=True)
class Capabilities:
    flags: frozenset  # the FLAGS this CPU (or the faked profile) has
    physical_cores: int
    logical_cpus: int
    packages: frozenset  # the registry's packages installed and not hidden
    ort_providers: tuple  # ONNX Runtime's available execution providers, hidden ones removed
    profile: str | None = None  # the faked CPU profile; None: this CPU's own flags
    hidden: frozenset = frozenset()  # packages and provider names treated as not installed
    vendor: str = ""  # /proc/cpuinfo's vendor_id (the faked profile's under a profile)
    fake_gpu: str | None = None  # a faked CUDA device's name (faked(gpu=...)); None: the environment decides
    faked_kernels: tuple = ()  # (registry need check name, outcome) pairs from faked(kernels=...): None works, else why

    @property
    def cpu_class(self) -> str:
        return cpu.cpu_class(self.flags)

    @property
    def native_bf16(self) -> bool:
        return cpu.native_bf16(self.flags)

    @property
    def int8_dot_product(self) -> str:
        return cpu.int8_dot_product(self.flags)

    def features_for(self, precision: str) -> str:
        return cpu.features_for(self.flags, precision)

    def has(self, package: str) -> bool:
        return package in self.packages

    def unmet(self, need: str) -> str | None:
        """Why a need of the machine (a package, native bf16, a C++ compiler, a GPU or NPU provider) is not met
        here, or None; what a runtime judges itself (registry.NeedCheck) is runtimes.needs'."""
        if need in registry.packages():
            hidden = " (treated as not installed here)" if need in self.hidden else ""
            return None if self.has(need) else f"{need} is not installed{hidden}: {install_hint(need)}"
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
                f"{install_hint(need)}")
        return f"unknown need {need!r}"

    def faked_kernel(self, name: str) -> tuple[bool, str | None]:
        """(whether faked(kernels=...) decides need check `name`, and its outcome)."""
        outcomes = dict(self.faked_kernels)
        return name in outcomes, outcomes.get(name)

    def describe(self) -> str:
        """One line for headers: the class and its flags, the cores, and any faking."""
        flags = " ".join(f for f in FLAGS if f in self.flags) or "none of " + " ".join(FLAGS)
        line = f"{self.cpu_class} ({flags}); {self.physical_cores} physical core(s) / {self.logical_cpus} logical"
        if self.profile:
            line += f"; FAKED CPU profile {self.profile!r}"
        if self.hidden:
            line += f"; treated as not installed: {', '.join(sorted(self.hidden))}"
        return line


def _apply(base: Capabilities, profile: str | None, without, gpu: str | None = None, kernels=()) -> Capabilities:
    """`base` with the profile's flags (None: base's own), `without` hidden as well, `gpu` and `kernels` faked."""
    hidden = base.hidden | without
    hidden_providers = {PROVIDERS[n] for n in hidden if n in PROVIDERS}
    return replace(base, flags=base.flags if profile is None else cpu.profile_flags(profile, "profile"),
                   fake_gpu=base.fake_gpu if gpu is None else gpu,
                   faked_kernels=tuple({**dict(base.faked_kernels), **dict(kernels)}.items()),
                   profile=base.profile if profile is None else profile, hidden=hidden,
                   vendor=base.vendor if profile is None else cpu.PROFILE_VENDORS[profile],
                   packages=frozenset(p for p in base.packages if p not in hidden),
                   ort_providers=tuple(p for p in base.ort_providers if p not in hidden_providers))


def detect() -> Capabilities:
    """This machine, read now, with the faking the environment asks for (CPU_PROFILE_ENV, WITHOUT_ENV)."""
    from tinybert.capabilities.packages import all_ort_providers, env_hidden, found

    real = Capabilities(cpu.cpu_flags(), cpu.physical_cores(), cpu.logical_cpus(),
                        frozenset(p for p in registry.packages() if found(p)), all_ort_providers(),
                        vendor=cpu.cpu_vendor())
    profile = os.environ.get(CPU_PROFILE_ENV, "").strip() or None
    if profile is not None:
        cpu.profile_flags(profile, CPU_PROFILE_ENV)
    return _apply(real, profile, env_hidden())


@lru_cache(maxsize=1)
def _detected() -> Capabilities:
    return detect()


def current() -> Capabilities:
    """What this process should assume: the innermost `faked` block's, else `detect()`'s (read once)."""
    return fake.innermost() or _detected()


@contextlib.contextmanager
def faked(profile: str | None = None, without=(), gpu: str | None = None, kernels: dict | None = None):
    """In the block `current()` has CPU `profile`, lacks `without`, sees CUDA device `gpu`, and each registry need
    check named in `kernels` works (None) or fails (its reason). Nests; this process only (env vars for subprocesses)."""
    if profile is not None:
        cpu.profile_flags(profile, "faked(profile=...)")
    checks = registry.need_checks()
    unknown = sorted(set(kernels or ()) - set(checks))
    if unknown:
        raise UsageError(f"faked(kernels=...): expected names among {', '.join(checks)}, got {', '.join(unknown)}")
    fake.push(_apply(current(), profile, parse_without(without, "faked(without=...)"), gpu, (kernels or {}).items()))
    try:
        yield fake.innermost()
    finally:
        fake.pop()
