"""The faking in force: the `faked` blocks of this process (innermost last) and the environment variables that
fake for a whole process and its subprocesses."""

from __future__ import annotations

import os

CPU_PROFILE_ENV = "TINYBERT_CPU_PROFILE"
WITHOUT_ENV = "TINYBERT_WITHOUT"
# A device name (e.g. "NVIDIA H200") makes the GPU branches run on a machine without one: the CUDA runtime then
# computes on the CPU and only the calls that need a real device (graphs, pinned memory, streams) are left out.
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
    inner = innermost()
    if inner is not None and inner.fake_gpu is not None:
        return inner.fake_gpu or None
    return os.environ.get(FAKE_GPU_ENV, "").strip() or None
