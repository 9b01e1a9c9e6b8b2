"""What machine and software a figure was measured on."""

from __future__ import annotations

import os
import platform
from importlib import metadata


def physical_cores() -> int:
    """Physical cores usable by this process (hyper-threads share one core's matrix units)."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cores = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            physical_id = core_id = None
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    physical_id = value.strip()
                elif key == "core id":
                    core_id = value.strip()
                elif not line.strip() and core_id is not None:
                    cores.add((physical_id, core_id))
                    physical_id = core_id = None
    except OSError:
        pass
    return max(1, min(logical, len(cores) or logical))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_versions(names=("torch", "transformers", "onnx", "onnxsim", "onnxruntime", "openvino", "nncf", "numpy")) -> dict:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def describe_machine() -> dict:
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "packages": package_versions(),
    }


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16() -> bool:
    """The CPU computes bf16 dot products itself (AVX512-BF16 or AMX), not by conversion to fp32."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def native_int8_dot() -> str:
    """The int8 dot-product instructions here: VNNI where present, else AVX2's u8s8 multiply-add."""
    flags = cpu_flags()
    if flags & {"amx_int8"}:
        return "AMX-INT8"
    if flags & {"avx512_vnni", "avx_vnni"}:
        return "VNNI"
    return "AVX2 u8s8 (no VNNI)" if "avx2" in flags else "no SIMD int8 dot product"
