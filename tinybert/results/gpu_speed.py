"""What the benchmark measured of the GPU paths on one GPU, for these weights: GPU_MODEL=auto orders its candidates
by it (a path such as the compiled one is chosen by these figures only, never by default)."""

from __future__ import annotations

import json
import math
import os
import time

from tinybert.fileio import write_json_atomic
from tinybert.settings import GPU_SPEED_RECORD_FILE, TIMESTAMP_FORMAT

FORMAT = "tinybert gpu speed record 1"


def record_path(record_dir: str) -> str:
    return os.path.join(record_dir, GPU_SPEED_RECORD_FILE)


def write(record_dir: str, *, device: str, weights_file: str, speeds: dict, gated: dict) -> str:
    """`speeds`: path name -> {batch size: sentences/s}; `gated`: path name -> whether it passed its gate at
    every batch size it ran."""
    from tinybert.data.dataset import file_sha256

    os.makedirs(record_dir, exist_ok=True)
    record = {"format": FORMAT, "device": device, "weights": os.path.basename(weights_file),
              "weights_sha256": file_sha256(weights_file), "measured_on": time.strftime(TIMESTAMP_FORMAT),
              "paths": {name: {"gated": bool(gated[name]), "sentences_per_s": {str(bs): rate for bs, rate in
                                                                               sorted(by_bs.items())}}
                        for name, by_bs in speeds.items()}}
    target = record_path(record_dir)
    write_json_atomic(target, record)
    return target


def measured_order(record_dir: str, weights_file: str, device: str) -> tuple[list[str], str]:
    """The gated paths the record measured on `device` for these weights, fastest first (by the geometric mean of
    each one's rate over the fastest's at every batch size), and where that came from; [] and why not otherwise."""
    path = record_path(record_dir)
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return [], f"no GPU speed record {path} (test/benchmark.sh on this GPU writes it)"
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return [], f"{path}: expected a {FORMAT!r}, got something else"
    if record.get("device") != device:
        return [], f"{path} was measured on {record.get('device')}, this GPU is {device}"
    from tinybert.data.dataset import file_sha256

    if not os.path.isfile(weights_file) or record.get("weights_sha256") != file_sha256(weights_file):
        return [], f"{path} is stale (measured for other weights)"
    paths = {name: entry["sentences_per_s"] for name, entry in record["paths"].items() if entry.get("gated")}
    sizes = set.intersection(*(set(by_bs) for by_bs in paths.values())) if paths else set()
    if not sizes:
        return [], f"{path}: no gated path measured at a common batch size"
    best = {bs: max(by_bs[bs] for by_bs in paths.values()) for bs in sizes}
    score = {name: math.exp(sum(math.log(by_bs[bs] / best[bs]) for bs in sizes) / len(sizes))
             for name, by_bs in paths.items()}
    order = sorted(score, key=score.get, reverse=True)
    return order, f"measured by the benchmark on {device} ({record.get('measured_on')}, bs {', '.join(sorted(sizes, key=int))})"
