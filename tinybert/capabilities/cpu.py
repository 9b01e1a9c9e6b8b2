"""The CPU: its flags as /proc/cpuinfo lists them, the profiles a test or a user can fake, its cores, and what
the flags mean for the matrix-multiply kernels (class, native bf16, int8 dot product)."""

from __future__ import annotations

import os

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


def cpu_class(flags: frozenset) -> str:
    if {"amx_tile", "amx_bf16"} <= flags or {"amx_tile", "amx_int8"} <= flags:
        return "AMX"
    if "avx512f" in flags:
        return "AVX-512" + ("+VNNI" if "avx512_vnni" in flags else "") + ("+BF16" if "avx512_bf16" in flags else "")
    if "avx2" in flags:
        return "AVX2+VNNI" if "avx_vnni" in flags else "AVX2"
    return "pre-AVX2"


def native_bf16(flags: frozenset) -> bool:
    """The CPU computes bf16 dot products itself (AVX512-BF16 or AMX), not by conversion to fp32."""
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def int8_dot_product(flags: frozenset) -> str:
    """The int8 dot-product instructions here: AMX, VNNI, else AVX2's u8 x s8 multiply-add."""
    if "amx_int8" in flags:
        return "AMX-INT8"
    if flags & {"avx512_vnni", "avx_vnni"}:
        return "VNNI"
    return "AVX2 u8s8 (no VNNI)" if "avx2" in flags else "no SIMD int8 dot product"


def features_for(flags: frozenset, precision: str) -> str:
    """The instructions a matrix multiply of this precision can use here (fp32, bf16 or int8)."""
    if precision.startswith("int8"):
        return int8_dot_product(flags)
    if precision == "bf16":
        if "amx_bf16" in flags:
            return "AMX-BF16"
        return "AVX512-BF16" if "avx512_bf16" in flags else "no native bf16 (emulated)"
    if "avx512f" in flags:
        return "AVX-512 FMA"
    return "AVX2 FMA" if {"avx2", "fma"} <= flags else "SSE"


def profile_flags(name: str, source: str) -> frozenset:
    from tinybert.errors import UsageError

    if name not in PROFILES:
        raise UsageError(f"{source}: expected a CPU profile among {', '.join(PROFILES)}, got {name!r}")
    return PROFILES[name]


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
