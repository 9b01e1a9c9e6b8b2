"""The interface every runtime class implements (`Runtime`), and what a runtime with its own asynchronous queue adds
(`OverlappedRuntime`), written once as Protocols; the runner, the steps and the benchmark use nothing else."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Callable, Iterable, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

Shape = tuple[int, int]  # (rows, length) of one call's inputs


@runtime_checkable
class Runtime(Protocol):
    """A model opened on one engine: `run` takes a batch of features and gives its float32 logits [bs, 2]."""

    name: str  # its registry.RUNTIMES name
    batch_size: int | None  # fixed by the model; None: a dynamic batch axis
    seq_len: int | None  # fixed by the model; None: dynamic
    threads: int  # threads it computes on, in all
    requests: int  # calls the runner keeps in flight (above 1, `run` must be thread-safe)

    def run(self, input_ids: np.ndarray, segment_ids: np.ndarray, input_mask: np.ndarray) -> np.ndarray:
        ...

    def warm_up(self, shapes: Iterable[Shape]) -> float | None:
        """Compile each shape a pass will meet; the seconds that took, None where nothing compiles per shape."""
        ...


@runtime_checkable
class OverlappedRuntime(Runtime, Protocol):
    """A runtime with its own asynchronous queue (the OpenVINO THROUGHPUT rows): the runner hands it a whole pass."""

    requests_in_flight: int  # the requests its queue holds

    def run_overlapped(self, inputs: Iterable[tuple[np.ndarray, ...]],
                       on_output: Callable[[int, np.ndarray], None]) -> None:
        ...


@runtime_checkable
class PipelinedRuntime(Runtime, Protocol):
    """A runtime that stages its own calls (the CUDA runtime: the next batch gathered while this one runs): the
    runner hands it the pass's (indices, length) calls over the whole arrays."""

    def run_calls(self, arrays, calls: Iterable[tuple[np.ndarray, int]],
                  on_output: Callable[[int, np.ndarray], None]) -> None:
        ...


class RuntimeBase:
    """What a runtime class inherits unless it does otherwise: nothing compiles per shape."""

    def warm_up(self, shapes: Iterable[Shape]) -> float | None:
        return None


def protocol_members(protocol: type) -> list[str]:
    """The members `protocol` declares, its base Protocols' included: attributes and methods."""
    names: list[str] = []
    for base in reversed(protocol.__mro__):
        if base is Protocol or not getattr(base, "_is_protocol", False):
            continue
        declared = list(base.__dict__.get("__annotations__", {}))
        declared += [name for name, value in vars(base).items() if callable(value) and not name.startswith("_")]
        names += [name for name in declared if name not in names]
    return names


def problems(cls: type, protocol: type = Runtime) -> list[str]:
    """What class `cls` lacks of `protocol`: members it neither defines nor declares by an annotation (what its
    `__init__` sets is declared so: a class is checked without opening a model), methods with other parameters."""
    declared = {name for base in cls.__mro__ if not getattr(base, "_is_protocol", False)
                for name in base.__dict__.get("__annotations__", {})}
    found = []
    for name in protocol_members(protocol):
        wanted, got = getattr(protocol, name, None), getattr(cls, name, None)
        if not callable(wanted) and (hasattr(cls, name) or name in declared):
            continue
        if not callable(wanted) or not callable(got):
            found.append(f"{cls.__name__}: expected a member {name!r}{' (a method)' if callable(wanted) else ''}, "
                         f"got {'none' if got is None else type(got).__name__}")
            continue
        expected, given = list(inspect.signature(wanted).parameters), list(inspect.signature(got).parameters)
        if given != expected:
            found.append(f"{cls.__name__}.{name}: expected parameters ({', '.join(expected)}), "
                         f"got ({', '.join(given)})")
    return found
