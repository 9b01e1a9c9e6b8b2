"""Whether a need is met here: the machine's by capabilities, then the check a runtime makes itself (registry
NeedCheck, faked by capabilities.faked(kernels=...)), the calibration file by the run's input."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator

from tinybert import registry
from tinybert.capabilities import current, gpu_unmet, installed
from tinybert.capabilities.gpu import GPU_NEEDS
from tinybert.errors import UsageError, expect

CALIBRATION = "calibration"  # the need a calibration file (CALIB_FILE) meets: the run's input, not the machine's
# How that need is judged: not at all (its model is exported already), met by a file named (the export that reads
# it comes later), or met by a file that exists (an export about to read it).
CALIBRATION_JUDGED = ("ignored", "named", "present")


def resolve(target: str):
    """The object a registry "module:name" string names, its module imported now."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def check_outcome(check: registry.NeedCheck) -> str | None:
    """Why the check fails here (the faked outcome where faked(kernels=...) decides it), or None."""
    decided, outcome = current().faked_kernel(check.name)
    return outcome if decided else resolve(check.judge)()  # the runtime caches its own check


def unmet(need: str, device: int = 0) -> str | None:
    """Why `need` is unmet here (a GPU's on CUDA device `device`): the machine's reason, else the reason of the
    runtime check that judges it."""
    why = gpu_unmet(need, device) if device and need in GPU_NEEDS else current().unmet(need)
    if why:
        return why
    return next((w for w in (check_outcome(c) for c in registry.need_checks().values() if c.need == need) if w), None)


def unmet_needs(path: registry.RunPath, calibration: str = "ignored",
                calibration_file: str | None = None, device: int = 0) -> Iterator[str]:
    """Why `path` cannot run here, a reason per unmet need in the order of its needs, each checked only when the
    one before has been taken: the machine's by `unmet`, the calibration file as `calibration` says."""
    expect(calibration in CALIBRATION_JUDGED, UsageError,
           f"expected calibration {registry.alternatives(CALIBRATION_JUDGED)}, got {calibration!r}")
    return (why for why in (_unmet(need, calibration, calibration_file, device) for need in path.all_needs) if why)


def _unmet(need: str, calibration: str, calibration_file: str | None, device: int = 0) -> str | None:
    if need != CALIBRATION:
        return unmet(need, device)
    if calibration == "named" and not calibration_file:
        return "no calibration file (CALIB_FILE)"
    if calibration == "present" and (calibration_file is None or not os.path.isfile(calibration_file)):
        return f"no calibration file (CALIB_FILE: {'none given' if calibration_file is None else calibration_file})"
    return None


def backend_unmet(entry: registry.Backend, device: int = 0) -> str | None:
    """Why BACKEND `entry` cannot run here (its module missing, a need unmet; a GPU's on DEVICE `device`), or None."""
    if entry.module and not installed(entry.module):
        return f"{entry.module} is not installed"
    return next((why for why in (unmet(need, device) for need in entry.needs) if why), None)
