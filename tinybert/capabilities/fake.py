"""The faking in force: the `faked` blocks of this process (innermost last) and the environment variables that
fake for a whole process and its subprocesses."""

from __future__ import annotations

import os

CPU_PROFILE_ENV = "TINYBERT_CPU_PROFILE"
WITHOUT_ENV = "TINYBERT_WITHOUT"
# A device name (e.g. "NVIDIA H200"; several, comma-separated, fake as many devices) makes the GPU branches run on a
# machine without one: the CUDA runtime computes on the CPU, leaving out the calls that need a real device.
FAKE_GPU_ENV = "TINYBERT_FAKE_GPU"

_faked: list = []  # the Capabilities of the `faked` blocks in force, innermost last


def innermost():
    """The innermost `faked` block's Capabilities, or None outside every block."""
    return _faked[-1] if _faked else None


def push(caps) -> None:
    _faked.append(caps)


def pop() -> None:
    _faked.pop()


def fake_gpu_name() -> str | None:
    """The faked devices as given (comma-separated names), or None."""
    inner = innermost()
    if inner is not None and inner.fake_gpu is not None:
        return inner.fake_gpu or None
    return os.environ.get(FAKE_GPU_ENV, "").strip() or None


def fake_gpu_names() -> tuple[str, ...]:
    """One name per faked device, device 0 first; () where none is faked."""
    return tuple(name.strip() for name in (fake_gpu_name() or "").split(",") if name.strip())
