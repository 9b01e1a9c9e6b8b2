"""Optional packages and ONNX Runtime's execution providers: which import here (less those hidden by faking), what
to install for each (the registry's runtimes say it for theirs), and the noise some print on import."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from functools import lru_cache

from tinybert import registry
import tinybert.capabilities.fake as fake
from tinybert.errors import BackendUnavailableError, UsageError

PROVIDERS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider", "cann": "CANNExecutionProvider"}
_ONNXRUNTIME_GPU = "pip install onnxruntime-gpu on a GPU machine"
PROVIDER_HINTS = {"cuda": _ONNXRUNTIME_GPU, "tensorrt": _ONNXRUNTIME_GPU}  # the GPU providers no runtime brings
TORCH_CUDA = "torch_cuda"  # the need for a CUDA device torch can use (capabilities.gpu)


def install_hint(name: str) -> str | None:
    """What to install for a package, provider or need (a runtime's, else a GPU provider's), or None."""
    return registry.install_hint(name) or PROVIDER_HINTS.get(name)


def known_names() -> list[str]:
    """The names `without` accepts: every package the registry knows, the providers, a CUDA device for torch."""
    return sorted(set(registry.packages()) | set(PROVIDERS) | {TORCH_CUDA})


def parse_without(names, source: str) -> frozenset:
    """Package or provider names to hide, checked: a misspelt name must not silently hide nothing."""
    if isinstance(names, str):
        names = names.replace(",", " ").split()
    names = frozenset(n.strip().lower() for n in names if n.strip())
    known = known_names()
    unknown = sorted(names - set(known))
    if unknown:
        raise UsageError(f"{source}: expected names among {', '.join(known)}, got {', '.join(unknown)}")
    return names


def env_hidden() -> frozenset:
    return parse_without(os.environ.get(fake.WITHOUT_ENV, ""), fake.WITHOUT_ENV)


def hidden() -> frozenset:
    """Without a full detection (which imports ONNX Runtime): scripts ask this for every step."""
    inner = fake.innermost()
    return inner.hidden if inner is not None else env_hidden()


def found(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def installed(package: str) -> bool:
    """The package can be imported here and is not hidden."""
    return package not in hidden() and found(package)


def require(package: str, purpose: str = ""):
    """The imported package, or BackendUnavailableError with what to install."""
    hint = install_hint(package) or f"pip install {package}"
    needed = f" (needed for {purpose})" if purpose else ""
    if package in hidden():
        raise BackendUnavailableError(f"{package}: expected it installed{needed}, got none (hidden by "
                                      f"{fake.WITHOUT_ENV} or capabilities.faked); install it: {hint}")
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise BackendUnavailableError(f"{package}: expected it installed{needed}, got {exc}; "
                                      f"install it: {hint}") from None


def all_ort_providers() -> tuple:
    if importlib.util.find_spec("onnxruntime") is None:
        return ()
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


def ort_providers() -> tuple:
    """ONNX Runtime's execution providers, asked now (not cached), less the hidden ones."""
    hidden_providers = {PROVIDERS[n] for n in hidden() if n in PROVIDERS}
    return tuple(p for p in all_ort_providers() if p not in hidden_providers) if installed("onnxruntime") else ()


# Lines torchao's import logs on every CPU (transformers imports it on each model load): its CUDA-only kernels
# absent, and torch deprecating how it registers enums; none of it touches what the pipeline runs.
_IMPORT_NOISE = {"torchao": "Failed to load ", "torchao.kernel.intmm": "Warning: Detected no triton",
                 "torch.utils._pytree": "is an Enum subclass and is now natively"}


@lru_cache(maxsize=1)
def quiet_torchao() -> None:
    """Drop `_IMPORT_NOISE` from the logs, once per process, before anything imports torchao."""
    for name, text in _IMPORT_NOISE.items():
        logging.getLogger(name).addFilter(lambda record, text=text: text not in str(record.msg))
