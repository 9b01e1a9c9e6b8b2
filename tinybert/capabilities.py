"""What this machine can do (placeholder until the capability profiles land): physical cores and
why a registry need is unmet."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Capabilities:
    physical_cores: int
    flags: frozenset
    packages: frozenset
    providers: frozenset

    @property
    def cpu_class(self) -> str:
        if "amx_int8" in self.flags:
            return "AMX"
        if "avx512f" in self.flags:
            return "AVX-512" + ("+VNNI" if "avx512_vnni" in self.flags else "")
        return "AVX2" if "avx2" in self.flags else "no AVX2"

    @property
    def native_bf16(self) -> bool:
        return bool(self.flags & {"avx512_bf16", "amx_bf16"})

    def unmet(self, need: str) -> str | None:
        if need in ("openvino", "nncf", "torch"):
            return None if need in self.packages else f"{need} is not installed (pip install {need})"
        if need == "native_bf16":
            return None if self.native_bf16 else "this CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag)"
        provider = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}.get(need)
        if provider:
            return None if provider in self.providers else (
                f"this onnxruntime has no {provider} (available: {', '.join(sorted(self.providers))}); "
                "install onnxruntime-gpu on a GPU machine")
        return f"unknown need {need!r}"


@lru_cache(maxsize=1)
def current() -> Capabilities:
    import onnxruntime

    from .machine import cpu_flags, physical_cores

    packages = frozenset(n for n in ("openvino", "nncf", "torch") if importlib.util.find_spec(n) is not None)
    return Capabilities(physical_cores(), frozenset(cpu_flags()), packages,
                        frozenset(onnxruntime.get_available_providers()))
