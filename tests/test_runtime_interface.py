"""Every runtime class in registry.RUNTIMES implements the interface written once in tinybert/runtimes/interface.py
(`Runtime`; `OverlappedRuntime` for the rows run through the runtime's own queue): each member present, the
methods' parameters named as there; a class lacking one is reported."""

from __future__ import annotations

import importlib
import re

import pytest
from conftest import REPO

from tinybert import registry
from tinybert.bench.rows import rows
from tinybert.runtimes.interface import OverlappedRuntime, Runtime, RuntimeBase, problems, protocol_members


def runtime_class(name: str) -> type:
    """The class registry.RUNTIMES names; skipped where a package it imports is not installed here."""
    entry = registry.runtime(name)
    try:
        module = importlib.import_module(entry.module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "tinybert":
            raise  # a bug in this package, not a missing dependency
        pytest.skip(f"{name}: {exc.name} is not installed ({entry.install})")
    return getattr(module, entry.cls)


@pytest.mark.parametrize("name", [r.name for r in registry.RUNTIMES])
def test_each_runtime_class_implements_the_interface(name):
    assert problems(runtime_class(name), Runtime) == []


@pytest.mark.parametrize("name", sorted({p.runtime for p in rows() if p.overlapped}))
def test_the_overlapped_rows_runtimes_implement_the_overlapped_interface(name):
    assert problems(runtime_class(name), OverlappedRuntime) == []


def test_the_docs_interface_table_names_every_member():
    section = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8").split("### 接口", 1)[1]
    rows = re.search(r"^\| 成员 \|.*?\n\n", section, re.S | re.M).group(0)
    named = set(re.findall(r"^\| `(\w+)|、`(\w+)`", rows, re.M))
    assert {n for pair in named for n in pair if n} == set(protocol_members(OverlappedRuntime))


class Incomplete:
    """A runtime missing members: no warm_up, threads or requests, and `run` with other parameter names."""

    name = "incomplete"
    batch_size = None
    seq_len: int | None

    def run(self, ids, segments, mask):
        return ids


def test_a_class_lacking_a_member_is_reported():
    assert problems(Incomplete) == [
        "Incomplete: expected a member 'threads', got none",
        "Incomplete: expected a member 'requests', got none",
        "Incomplete.run: expected parameters (self, input_ids, segment_ids, input_mask), got (self, ids, segments, "
        "mask)",
        "Incomplete: expected a member 'warm_up' (a method), got none",
    ]
    complete = type("Complete", (Incomplete, RuntimeBase), {"threads": 1, "requests": 1,
                                                             "run": lambda self, input_ids, segment_ids, input_mask: 0})
    assert problems(complete) == []
    assert problems(complete, OverlappedRuntime) == [
        "Complete: expected a member 'requests_in_flight', got none",
        "Complete: expected a member 'run_overlapped' (a method), got none"]


def test_an_opened_runtime_is_one_and_compiles_nothing_per_shape(small_onnx_bs4):
    from tinybert.runtimes import open_runtime

    runtime = open_runtime("onnxruntime", str(small_onnx_bs4), threads=2, requests=2)
    assert isinstance(runtime, Runtime) and not isinstance(runtime, OverlappedRuntime)
    assert (runtime.batch_size, runtime.threads, runtime.requests) == (4, 2, 2)
    assert runtime.warm_up([(4, 64)]) is None
