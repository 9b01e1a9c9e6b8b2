"""What each gate check found for a path, recorded beside its model with the CPU class (GPU) it ran on and what it
was judged on: the prepare step writes it, auto trusts only a passed, current one judged on what the caller has."""

from __future__ import annotations

import json
import os

from tinybert.fileio import write_json_atomic
from tinybert.settings import gate_record_path

FORMAT = "tinybert gate record 1"
# What a gate was judged on, weakest first: a record judged on weaker inputs than a caller has is checked again.
GENERATED = "generated ids"  # no features at hand: agreement with PyTorch only
UNLABELLED = "unlabelled sentences"  # real sentences without labels: agreement only
DEV_SET = "dev set"  # labelled features: agreement and the accuracy drop
JUDGED_ON = (GENERATED, UNLABELLED, DEV_SET)


def write(path: str, model_dir: str, *, model_file: str, runtime: str, gate: str, rule: str, passed: bool,
          figures: dict, checked_on: str, judged_on: str, device: str | None = None) -> str:
    """Record the gate outcome of path `path` (its model `model_file` on `runtime`) on this machine's CPU class,
    or on the GPU named `device` (a GPU path's outcome is its device's)."""
    from tinybert.capabilities import current
    from tinybert.data.dataset import file_sha256

    caps = current()
    record = {"format": FORMAT, "path": path, "model": os.path.basename(model_file),
              "model_sha256": file_sha256(model_file), "runtime": runtime, "gate": gate, "rule": rule,
              "passed": bool(passed), **figures, "checked_on": checked_on, "judged_on": judged_on,
              "cpu_class": device or caps.cpu_class, "cpu": device or caps.describe()}
    target = gate_record_path(path, model_dir)
    write_json_atomic(target, record)
    return target


def read(path: str, model_dir: str) -> dict | None:
    """The record, or None when there is none or it cannot be read (the caller falls back)."""
    try:
        with open(gate_record_path(path, model_dir), encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == FORMAT else None


def strength(judged_on: str | None) -> int:
    """How much inputs judged on `judged_on` prove (a record from before this field: the weakest)."""
    return JUDGED_ON.index(judged_on) if judged_on in JUDGED_ON else -1


def status(path: str, model_dir: str, model_file: str, cpu_class: str,
           having: str = GENERATED) -> tuple[str, str | None]:
    """(state, why not): "passed" (None) when the record lets auto choose `path` here for this model file; else "missing",
    "stale" (the model changed since), "other_cpu", "weaker" (judged on less than the caller is `having`) or "failed"."""
    name = os.path.basename(gate_record_path(path, model_dir))
    record = read(path, model_dir)
    if record is None:
        return "missing", f"no gate record {name} in {model_dir}"
    if not os.path.isfile(model_file):
        return "missing", f"no model {os.path.basename(model_file)} in {model_dir}"
    from tinybert.data.dataset import file_sha256

    if record.get("model") != os.path.basename(model_file) or record.get("model_sha256") != file_sha256(model_file):
        return "stale", f"{name} is stale (the model changed since its check)"
    if record.get("cpu_class") != cpu_class:
        return "other_cpu", f"its gate was checked on {record.get('cpu_class')}, this machine's is {cpu_class}"
    if strength(record.get("judged_on")) < strength(having):
        return "weaker", f"its gate was judged on {record.get('judged_on') or 'unrecorded inputs'}, {having} at hand"
    if not record.get("passed"):
        return "failed", f"its gate failed ({_figures(record)}; judged on {record.get('judged_on')})"
    return "passed", None


def _figures(record: dict) -> str:
    parts = []
    if isinstance(record.get("agreement"), (int, float)):
        parts.append(f"same prediction as PyTorch for {100 * record['agreement']:.2f}%")
    if isinstance(record.get("accuracy_drop"), (int, float)):
        parts.append(f"accuracy drop {record['accuracy_drop']:.2f} points")
    if isinstance(record.get("max_abs_diff"), (int, float)):
        parts.append(f"max abs logit difference {record['max_abs_diff']:.3e}")
    return ", ".join(parts) + f"; {record.get('rule', '')}".rstrip("; ")
