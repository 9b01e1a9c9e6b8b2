"""LoadGen's logs read back: `mlperf_log_detail.txt` into VALID or INVALID with LoadGen's own reasons and figures,
and `mlperf_log_accuracy.json` (sample index + hex of the two float32 logits) into logits per dev sample."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from tinybert.errors import DataFormatError, expect

DETAIL = "mlperf_log_detail.txt"
ACCURACY = "mlperf_log_accuracy.json"
SUMMARY = "mlperf_log_summary.txt"
MARK = ":::MLLOG "
CLASSES = 2  # the response data: two float32 logits per sample
# LoadGen's pass/fail keys and what each says when false.
CHECKS = (("result_min_duration_met", "min duration not met"),
          ("result_min_queries_met", "min query count not met"),
          ("early_stopping_met", "early stopping not met"),
          ("result_perf_constraints_met", "performance constraints not met (latency percentile over the bound)"))


@dataclass(frozen=True)
class Detail:
    """What LoadGen decided for one run: VALID or not, its reasons when not, and its figures (ns, per second)."""

    scenario: str
    mode: str
    valid: bool
    reasons: tuple[str, ...]
    values: dict = field(repr=False)

    def get(self, key: str, default=None):
        return self.values.get(key, default)

    def latency_ms(self, percentile: str) -> float | None:
        """A latency percentile LoadGen reported ("50.00", "90.00", "99.00"), in ms."""
        value = self.values.get(f"result_{percentile}_percentile_latency_ns")
        return None if value is None else float(value) / 1e6


def read_detail(path: str) -> Detail:
    """The detail log's MLLOG lines as a dict (the last value of each key), judged as LoadGen judged it: an error
    line or a false check is a reason, whatever result_validity says."""
    expect(os.path.isfile(path), DataFormatError, f"{path}: expected LoadGen's detail log, found no such file")
    values, errors = {}, []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.startswith(MARK):
                continue
            try:
                record = json.loads(line[len(MARK):])
                key, value = record["key"], record["value"]
            except (ValueError, KeyError, TypeError):
                raise DataFormatError(f"{path}:{number}: expected a LoadGen MLLOG record, got {line[:80]!r}") from None
            values[key] = value
            if record.get("metadata", {}).get("is_error"):
                errors.append(f"{key}: {value}")
    accuracy = values.get("effective_test_mode") == "AccuracyOnly"  # judged by its accuracy, not its timing
    if accuracy:
        values.setdefault("result_validity", "VALID")
    expect("result_validity" in values, DataFormatError,
           f"{path}: expected result_validity in LoadGen's detail log, got none (did the test end?)")
    reasons = [f"{why} ({key}: false)" for key, why in CHECKS if values.get(key) is False]
    if values.get("early_stopping_met") is False and values.get("early_stopping_result"):
        reasons.append(f"early stopping: {' '.join(str(values['early_stopping_result']).split())}")
    if values.get("result_invalid_reason"):
        reasons.append(f"LoadGen recommends: {str(values['result_invalid_reason']).strip()}")
    reasons += errors
    valid = values["result_validity"] == "VALID" and not errors
    if values["result_validity"] != "VALID" and not reasons:
        reasons.append(f"result_validity: {values['result_validity']}")
    return Detail(str(values.get("effective_scenario", "")), str(values.get("effective_test_mode", "")), valid,
                  tuple(reasons), values)


def read_accuracy_log(path: str, count: int) -> np.ndarray:
    """The logits of every sample `0..count-1` from LoadGen's accuracy log: each entry's qsl_idx in range, its data
    two float32 values, a sample logged twice with the same logits; a missing sample is an error."""
    expect(os.path.isfile(path), DataFormatError, f"{path}: expected LoadGen's accuracy log, found no such file")
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)
    except ValueError as exc:
        raise DataFormatError(f"{path}: expected LoadGen's accuracy log (a JSON list), got unreadable JSON: {exc}") \
            from None
    expect(isinstance(entries, list), DataFormatError, f"{path}: expected a JSON list, got {type(entries).__name__}")
    logits = np.full((count, CLASSES), np.nan, dtype=np.float32)
    seen = np.zeros(count, dtype=bool)
    for position, entry in enumerate(entries):
        try:
            index, data = int(entry["qsl_idx"]), bytes.fromhex(entry["data"])
        except (KeyError, TypeError, ValueError):
            raise DataFormatError(f"{path}: expected entries with qsl_idx and hex data, got {str(entry)[:80]!r} at "
                                  f"entry {position}") from None
        expect(0 <= index < count, DataFormatError,
               f"{path}: expected qsl_idx in 0..{count - 1}, got {index} at entry {position}")
        expect(len(data) == CLASSES * 4, DataFormatError,
               f"{path}: expected {CLASSES} float32 logits ({CLASSES * 4} bytes) per sample, got {len(data)} bytes "
               f"for sample {index}")
        row = np.frombuffer(data, dtype="<f4")
        expect(not seen[index] or np.array_equal(row, logits[index], equal_nan=True), DataFormatError,
               f"{path}: expected one result per sample, got different logits for sample {index}")
        logits[index], seen[index] = row, True
    missing = np.flatnonzero(~seen)
    expect(missing.size == 0, DataFormatError,
           f"{path}: expected all {count} samples, got {count - missing.size} distinct ones; missing e.g. "
           f"{missing[:5].tolist()}")
    return logits
