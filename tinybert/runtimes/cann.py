"""ONNX Runtime's CANN execution provider (`onnxruntime-cann`): the simplified ONNX model runs on an
Ascend NPU directly, with no ATC step; operators CANN does not take fall back to the CPU."""

from __future__ import annotations

import onnxruntime as ort

from tinybert.capabilities import PROVIDERS, install_hint, ort_providers
from tinybert.errors import BackendUnavailableError, UsageError, expect
from tinybert.runtimes.onnxruntime import OrtRuntime

PROVIDER = PROVIDERS["cann"]


def cann_providers(device: int) -> list:
    """The provider list the session gets: CANN on NPU `device` first, the CPU for the rest."""
    return [(PROVIDER, {"device_id": device}), "CPUExecutionProvider"]


class CannRuntime(OrtRuntime):
    name = "cann"

    def __init__(self, model_path: str, threads: int | None = None, device: int = 0, providers: list | None = None):
        expect(not providers, UsageError,
               f"expected no --providers with backend 'cann' (it runs {PROVIDER}, then the CPU), got {providers}")
        expect(isinstance(device, int) and device >= 0, UsageError,
               f"expected a non-negative NPU device id (--device / DEVICE), got {device!r}")
        available = ort_providers()
        if PROVIDER not in available:
            raise BackendUnavailableError(
                f"backend 'cann' needs ONNX Runtime's {PROVIDER}, which this onnxruntime "
                f"{getattr(ort, '__version__', '')} does not have (available: {', '.join(available)}); "
                f"on a machine with an Ascend NPU, source the CANN toolkit's set_env.sh (CANN_SET_ENV), then "
                f"{install_hint('cann')} in place of onnxruntime")
        super().__init__(model_path, threads=threads, providers=cann_providers(device), requests=1)
        self.device = device
