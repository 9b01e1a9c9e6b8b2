"""Side by side per path: SingleStream p90, Offline samples/s and the highest VALID Server QPS with the budget batcher
and the no-wait baseline, each run in its own process (LoadGen reads its config once per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tinybert.errors import UsageError, expect
from tinybert.fileio import reserve_dir, write_json_atomic, write_text_atomic
from tinybert.settings import TIMESTAMP_FORMAT

PEER_ROW = "OV8"  # the OpenVINO int8 peer (LATENCY hint) the issue holds the project's paths against
SERVER_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)  # the sweep's QPS as fractions of the path's Offline rate
BATCHERS = ("budget", "nowait")


def default_paths() -> list[str]:
    """The project's CPU paths (ORT_MODEL values) whose needs this machine meets, then the peer row if it can run."""
    from tinybert.bench.rows import row
    from tinybert.registry import PATHS, Role
    from tinybert.runtimes.needs import unmet_needs

    found = [p.name for p in PATHS if p.role is Role.PROJECT and not list(unmet_needs(p))]
    if not list(unmet_needs(row(PEER_ROW))):
        found.append(PEER_ROW)
    return found


def _run(args: list[str], json_out: str, log) -> list[dict]:
    """One `loadgen` run in its own process; its outcomes (INVALID ones too), or none if it failed otherwise."""
    command = [sys.executable, "-m", "tinybert", "loadgen", *args, "--json_out", json_out]
    log.write("$ " + " ".join(command) + "\n")
    log.flush()
    proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if not os.path.isfile(json_out):
        print(f"[WARN] {' '.join(args[:2])}: exit {proc.returncode}, no outcome (see the log)")
        return []
    with open(json_out, encoding="utf-8") as handle:
        return json.load(handle)["outcomes"]


def measure(paths: list[str], common: list[str], out_root: str, qps: list[float] | None = None,
            fractions=SERVER_FRACTIONS) -> str:
    """Every path's three scenarios (Server swept with both batchers), the table printed; returns the folder."""
    expect(len(paths) > 0, UsageError, "expected at least one path to measure, got none")
    folder = reserve_dir(out_root, f"loadgen-measure-{time.strftime(TIMESTAMP_FORMAT)}")
    rows = []
    with open(os.path.join(folder, "runs.log"), "w", encoding="utf-8") as log:
        for path in paths:
            chosen = ["--row", path] if path == PEER_ROW else ["--backend", "onnxruntime", "--ort_model", path]
            base = [*chosen, *common, "--out", os.path.join(folder, path)]
            single = _run(["--scenario", "SingleStream", *base], os.path.join(folder, f"{path}-ss.json"), log)
            offline = _run(["--scenario", "Offline", *base], os.path.join(folder, f"{path}-offline.json"), log)
            rate = _figure(offline, "samples_per_s")
            row = {"path": path, "singlestream_p90_ms": _figure(single, "p90_ms"), "offline_samples_per_s": rate}
            points = qps or ([round(rate * f) for f in fractions] if rate else [])
            for batcher in BATCHERS:
                swept = _run(["--scenario", "Server", *base, "--batcher", batcher, "--qps",
                              ",".join(f"{q:g}" for q in points)],
                             os.path.join(folder, f"{path}-server-{batcher}.json"), log) if points else []
                valid = [o["target_qps"] for o in swept if o["valid"]]
                row[f"server_{batcher}_qps"] = max(valid) if valid else None
            rows.append(row)
            print(table(rows).splitlines()[-1])
    text = table(rows)
    write_text_atomic(os.path.join(folder, "measure.md"), text + "\n")
    write_json_atomic(os.path.join(folder, "measure.json"), {"paths": rows, "common": common})
    print(text)
    print(f"[INFO] every run's LoadGen logs, the table and runs.log in {folder}")
    return folder


def _figure(outcomes: list[dict], key: str):
    return outcomes[0]["figures"].get(key) if outcomes and outcomes[0]["valid"] else None


def table(rows: list[dict]) -> str:
    """The side-by-side table: '-' where LoadGen judged the run INVALID (or no sweep point was VALID)."""
    def cell(value, digits):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = ["| path | SingleStream p90 ms | Offline samples/s | Server VALID QPS, budget batcher | "
             "Server VALID QPS, no-wait baseline | budget / Offline |", "| ---- | ---- | ---- | ---- | ---- | ---- |"]
    for r in rows:
        share = (r["server_budget_qps"] / r["offline_samples_per_s"]
                 if r["server_budget_qps"] and r["offline_samples_per_s"] else None)
        lines.append(f"| {r['path']} | {cell(r['singlestream_p90_ms'], 3)} | {cell(r['offline_samples_per_s'], 1)} | "
                     f"{cell(r['server_budget_qps'], 0)} | {cell(r['server_nowait_qps'], 0)} | {cell(share, 2)} |")
    return "\n".join(lines)
