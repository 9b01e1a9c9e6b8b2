"""Inference backends behind one small interface, each imported only when chosen.

A backend is created from a model path and exposes:
- `name`: str
- `batch_size`: the model's fixed batch size, or None when the batch axis is dynamic
- `seq_len`: the model's fixed sequence length, or None when dynamic
- `run(input_ids, segment_ids, input_mask) -> np.ndarray` float32 logits `[bs, 2]`
"""

from __future__ import annotations

import importlib

from ..errors import BackendUnavailableError, UsageError

# name -> (module, class, what to install when the import fails)
BACKENDS = {
    "onnxruntime": ("onnxruntime_backend", "OnnxRuntimeBackend", "pip install onnxruntime"),
    "pytorch": ("pytorch_backend", "PyTorchBackend", "pip install torch transformers"),
    # The PyTorch peer: options precision fp32/bf16 (autocast), compile (torch.compile), cls_only.
    "pytorch-peer": ("torch_peer_backend", "TorchPeerBackend", "pip install torch transformers"),
    # ONNX Runtime's CANN execution provider on an Ascend NPU; the class says what is missing.
    "cann": ("cann_backend", "CannBackend", "pip install onnxruntime-cann (needs the CANN toolkit)"),
    "openvino": ("openvino_backend", "OpenVinoBackend", "pip install openvino (see requirements.txt)"),
    "openvino-bf16": ("openvino_backend", "OpenVinoBf16Backend", "pip install openvino (see requirements.txt)"),
}


def backend_names() -> list[str]:
    return sorted(BACKENDS)


def create_backend(name: str, model_path: str, **options):
    if name not in BACKENDS:
        raise UsageError(f"expected a backend among {', '.join(backend_names())}, got {name!r}")
    module_name, class_name, install_hint = BACKENDS[name]
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith(__package__.split(".")[0]):
            raise  # a bug in this package, not a missing dependency
        raise BackendUnavailableError(f"backend {name!r} is not available here ({exc}); install it: {install_hint}") from None
    return getattr(module, class_name)(model_path, **options)
