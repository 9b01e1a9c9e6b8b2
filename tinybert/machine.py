"""The machine and software a figure comes from, recorded beside it."""

from __future__ import annotations

import platform
from importlib import metadata

from tinybert.capabilities import cpuinfo_values, current


def use_compile_cache(cache_dir: str | None = None) -> str:
    """Inductor's on-disk caches at settings.COMPILE_CACHE_DIR unless TORCHINDUCTOR_CACHE_DIR is set; the folder.
    Called at process start: Inductor fixes its folder (a /tmp default) at the first compile of any kind."""
    import os

    from tinybert.settings import COMPILE_CACHE_DIR

    folder = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or os.path.expanduser(cache_dir or COMPILE_CACHE_DIR)
    os.makedirs(folder, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
    return folder


def physical_cores() -> int:
    """Physical cores usable by this process (`capabilities` reads the CPU)."""
    return current().physical_cores


CPUFREQ_MAX = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"  # kHz, where the kernel exposes cpufreq


def cpu_model() -> str:
    models = cpuinfo_values("model name")
    return models[0] if models else platform.processor() or platform.machine()


def cpu_clock_mhz() -> tuple[float | None, str]:
    """The highest clock the system reports, and where it was read: cpufreq's maximum where there is one,
    else /proc/cpuinfo's 'cpu MHz' (a VM often reports the nominal clock, below any boost)."""
    import re

    try:
        with open(CPUFREQ_MAX, encoding="utf-8") as handle:
            return int(handle.read().strip()) / 1000.0, "cpufreq cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    try:
        mhz = [float(value) for value in cpuinfo_values("cpu MHz")]
    except ValueError:
        mhz = []
    if mhz:
        return max(mhz), "/proc/cpuinfo cpu MHz"
    found = re.search(r"@\s*([0-9.]+)\s*GHz", cpu_model())
    return (float(found.group(1)) * 1000.0, "the model name's clock") if found else (None, "no clock reported")


def package_versions(names=("torch", "torchao", "transformers", "onnx", "onnxsim", "onnxruntime", "openvino", "nncf",
                           "numpy")) -> dict:
    versions = {}
    hidden = current().hidden
    for name in names:
        try:
            versions[name] = metadata.version(name) + (" (treated as not installed)" if name in hidden else "")
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def describe_machine() -> dict:
    return {
        "cpu": cpu_model(),
        "logical_cpus": current().logical_cpus,
        "physical_cores": physical_cores(),
        "cpu_features": current().describe(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "packages": package_versions(),
    }
