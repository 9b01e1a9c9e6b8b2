"""The model card's accuracy/performance table, assembled from what test/eval_all.sh recorded."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from tinybert.errors import PipelineError, expect
from tinybert.fileio import read_json, write_json_atomic, write_text_atomic
from tinybert.machine import describe_machine
from tinybert.registry import foreign
from tinybert.bench.roofline import model_shape_lines, rates_for, row_recipe
from tinybert.settings import ROOFLINE_TOKENS, default

# ais_bench is a foreign tool (registry.foreign): its throughput line is read back from the log; every other
# backend runs our perf step, which hands its figures over as JSON.
AIS_BENCH_THROUGHPUT = re.compile(
    r"throughput 1000\*batchsize\.mean\((\d+)\)/NPU_compute_time\.mean\(([\d.eE+-]+)\):\s*([\d.eE+-]+)")


def perf_figure(record: dict, path: str) -> tuple[float, int]:
    """The table's fps from `tinybert perf --json_out` and the requests in flight: ais_bench's formula, or the
    loop's wall-clock samples/s where overlapping requests make per-call times understate the rate."""
    what = f"{path}: expected the figures of 'tinybert perf --json_out'"
    requests = record.get("requests_in_flight")
    expect(isinstance(requests, int) and requests >= 1, PipelineError,
           f"{what} with a positive 'requests_in_flight', got {requests!r}")
    key = "wall_clock_samples_per_s" if requests > 1 else "throughput"
    expect(isinstance(record.get(key), (int, float)), PipelineError, f"{what} with a number under {key!r}, got "
                                                                     f"{record.get(key)!r}")
    return float(record[key]), requests


def ais_bench_throughput(log_path: str) -> float:
    """The last `[INFO] throughput 1000*batchsize.mean(...)...: <fps>` line ais_bench printed."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise PipelineError(f"{log_path}: expected the log of test/perf.sh, found no such file") from None
    matches = AIS_BENCH_THROUGHPUT.findall(text)
    expect(matches, PipelineError, f"{log_path}: expected ais_bench's '[INFO] throughput 1000*batchsize...' line, "
                                   "found none")
    return float(matches[-1][2])


def read_perf(eval_dir: str, bs: int, backend: str) -> tuple[float, int]:
    """Batch size `bs`'s fps and requests in flight, as test/perf.sh recorded them: our perf step's
    `bs<bs>_perf.json`; on ais_bench, which writes no JSON, the line it printed into `bs<bs>_perf.log`."""
    figures = read_perf_figures(eval_dir, bs, backend)
    return figures.fps, figures.requests


@dataclass(frozen=True)
class PerfFigures:
    """One batch size's speed cell: the median fps, requests in flight, the repeats' min-max, the path run."""

    fps: float
    requests: int
    spread: tuple[float, float] | None = None  # None: one figure only (ais_bench, or an older record)
    ort_model: dict | None = None  # perf's record of the path ORT_MODEL named (auto: chosen, and why)

    def cell(self) -> str:
        mark = "*" if self.requests > 1 else ""
        if self.spread is None:
            return f"{self.fps:.2f}{mark}"
        return f"{self.fps:,.0f} ({self.spread[0]:,.0f}–{self.spread[1]:,.0f}){mark}"


def read_perf_figures(eval_dir: str, bs: int, backend: str) -> PerfFigures:
    """`read_perf`'s figures with the spread of perf's repeats and the path it ran, where its JSON has them."""
    if foreign(backend):
        return PerfFigures(ais_bench_throughput(os.path.join(eval_dir, f"bs{bs}_perf.log")), 1)
    json_path = os.path.join(eval_dir, f"bs{bs}_perf.json")
    record = read_json(json_path, PipelineError, "the figures test/perf.sh wrote with --json_out")
    fps, requests = perf_figure(record, json_path)
    key = "wall_clock_samples_per_s" if requests > 1 else "throughput"
    spread = (record.get("spread") or {}).get(key)
    expect(spread is None or (isinstance(spread, list) and len(spread) == 2
                              and all(isinstance(v, (int, float)) for v in spread)), PipelineError,
           f"{json_path}: expected the figures of 'tinybert perf --json_out' with a [min, max] pair under "
           f"spread.{key}, got {spread!r}")
    return PerfFigures(fps, requests, None if spread is None else (float(spread[0]), float(spread[1])),
                       record.get("ort_model"))


def inversions(figures: dict[int, PerfFigures]) -> list[str]:
    """A line for each batch size slower than smaller ones beyond the measured spread: its repeats' max below
    their min, so the ranges do not overlap (figures without a spread are never compared)."""
    lines = []
    sizes = sorted(bs for bs, f in figures.items() if f.spread is not None)
    for position, larger in enumerate(sizes):
        high = figures[larger].spread[1]
        slower_than = [bs for bs in sizes[:position] if high < figures[bs].spread[0]]
        if slower_than:
            ranges = ", ".join(f"bs{bs} ({figures[bs].spread[0]:,.0f}–{figures[bs].spread[1]:,.0f})"
                               for bs in slower_than)
            lines.append(f"注意: bs{larger} is slower than {ranges} beyond the spread of the repeats: "
                         f"{figures[larger].spread[0]:,.0f}–{high:,.0f} fps.")
    return lines


def build_table(eval_dir: str, batch_sizes: list[int], backend: str, model_dir: str,
                ort_model: str = default("ORT_MODEL"), accuracy_ort_model: str | None = None) -> str:
    """The card's table from eval_all.sh's records; `accuracy_ort_model`: the path the accuracy column ran
    where it is not the speed column's (ORT_MODEL=auto times the fastest gated path, scores the fp32 one)."""
    rows, records, speed = [], [], {}
    pth_path = os.path.join(eval_dir, "pth_accuracy.json")
    pth = read_json(pth_path, PipelineError, "PyTorch eager accuracy") if os.path.exists(pth_path) else None
    for bs in batch_sizes:
        accuracy = read_json(os.path.join(eval_dir, f"bs{bs}_accuracy.json"), PipelineError, "postprocess results")
        figures = speed[bs] = read_perf_figures(eval_dir, bs, backend)
        records.append({"batch_size": bs, "accuracy": accuracy["accuracy"], "num_samples": accuracy["num_samples"],
                        "throughput": figures.fps, "requests_in_flight": figures.requests,
                        "throughput_spread": list(figures.spread) if figures.spread else None,
                        "ort_model": figures.ort_model, "result_dir": accuracy["result_dir"]})
        pth_cell = f"{pth['accuracy']:.2f}" if pth else "-"
        rows.append(f"| TinyBERT (bs{bs}) | {pth_cell} | {accuracy['accuracy']:.2f} | {accuracy['num_samples']} | "
                    f"{figures.cell()} |")
    best = max(records, key=lambda r: r["throughput"])
    best_cell = speed[best["batch_size"]].cell().rstrip("*")
    chosen = _speed_paths(speed)
    machine = describe_machine()
    speed_path = chosen[0]["path"] if len(chosen) == 1 else ort_model
    on_gpu = _on_gpu(speed_path)
    rates = {} if on_gpu else _matmul_rates(machine["physical_cores"], speed_path, batch_sizes)
    versions = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    gpu = gpu_column(eval_dir, batch_sizes)
    for index, record in enumerate(records):
        cell = gpu["cells"].get(record["batch_size"]) if gpu else None
        record["gpu_throughput"] = cell.fps if cell else None
        rows[index] += f" {cell.cell() if cell else '-'} |" if gpu else ""
    best_gpu = ""
    if gpu:
        top = gpu["cells"].get(best["batch_size"])
        best_gpu = f" {top.cell().rstrip('*') if top else '-'} |"
    lines = [
        f"Backend: **{backend}**; checkpoint: `{model_dir}`; measured {time.strftime('%Y-%m-%d')}.",
        f"Machine: {machine['cpu']}, {machine['physical_cores']} physical core(s) / {machine['logical_cpus']} "
        f"logical CPU(s); Python {machine['python']}; {versions}.",
        f"The speed column ran on the GPU ({speed_path}): no CPU matrix-multiply rate applies." if on_gpu else
        f"The CPU path's matrix-multiply rate at the model's shapes (M = batch size x {ROOFLINE_TOKENS} tokens), "
        "which CPU fps scale with: " + "; ".join(model_shape_lines(rates)) + ".",
        "",
        f"| 模型 | pth精度 (PyTorch eager) | {_label(backend, accuracy_ort_model)}推理精度 | 样本数 | "
        f"{_label(backend, _speed_label(chosen, accuracy_ort_model))}性能 (fps) |" + (f" {gpu['header']} |" if gpu else ""),
        "| ---- | ---- | ---- | ---- | ---- |" + (" ---- |" if gpu else ""),
        *rows,
        f"| 最优bs (bs{best['batch_size']}) | {pth['accuracy']:.2f} | {best['accuracy']:.2f} | "
        f"{best['num_samples']} | {best_cell} |{best_gpu}" if pth else
        f"| 最优bs (bs{best['batch_size']}) | - | {best['accuracy']:.2f} | {best['num_samples']} | {best_cell} |"
        f"{best_gpu}",
        "",
        "精度为百分比 (accuracy in %); 性能单位 fps (sentences per second, `1000*batchsize/mean compute ms`; "
        "* where several requests were in flight, whose per-call times overlap: the wall-clock sentences/s of the "
        "same timed loop)" + ("; each the median of perf's repeats (PERF_REPEATS, each at least PERF_SECONDS), "
                              "their min–max in brackets." if any(f.spread for f in speed.values()) else "."),
        *_path_lines(chosen, accuracy_ort_model),
        *inversions(speed),
        *([gpu["note"]] if gpu else []),
    ]
    table = "\n".join(lines) + "\n"
    write_text_atomic(os.path.join(eval_dir, "table.md"), table)
    write_json_atomic(os.path.join(eval_dir, "table.json"), {
        "backend": backend, "model_dir": model_dir, "machine": machine, "model_shape_rates": rates,
        "pth_accuracy": pth["accuracy"] if pth else None, "accuracy_ort_model": accuracy_ort_model,
        "speed_ort_model": chosen, "inversions": inversions(speed), "rows": records,
        "gpu_column": {"header": gpu["header"], "device": gpu["device"], "path": gpu["path"]} if gpu else None})
    return table


GPU_PERF_FILE = "bs{bs}_gpu_perf.json"  # test/perf_gpu.sh --json_out, as eval_all.sh names it


def gpu_column(eval_dir: str, batch_sizes: list[int]) -> dict | None:
    """The card's GPU column from perf_gpu.sh's records (None: none was made, no GPU here): its header names the
    device and the path; a batch size without a record (trtexec writes none) shows '-'."""
    cells, devices, paths = {}, [], []
    for bs in batch_sizes:
        path = os.path.join(eval_dir, GPU_PERF_FILE.format(bs=bs))
        if not os.path.exists(path):
            continue
        record = read_json(path, PipelineError, "the figures test/perf_gpu.sh wrote with --json_out")
        fps, requests = perf_figure(record, path)
        spread = (record.get("spread") or {}).get("throughput")
        cells[bs] = PerfFigures(fps, requests, tuple(spread) if spread else None, record.get("ort_model"))
        devices.append(str(record.get("device") or record.get("backend")))
        paths.append(str((record.get("ort_model") or {}).get("path") or record.get("backend")))
    if not cells:
        return None
    device, path = " / ".join(dict.fromkeys(devices)), " / ".join(dict.fromkeys(paths))
    return {"cells": cells, "device": device, "path": path, "header": f"GPU性能 ({device}, {path}) (fps)",
            "note": f"GPU column: test/perf_gpu.sh at the card's shape [bs, 64] (the T4 column's counterpart) on "
                    f"{device}, path {path}."}


def _on_gpu(path: str) -> bool:
    from tinybert.registry import run_path

    return path != "auto" and run_path(path).on_gpu


def _speed_paths(speed: dict[int, PerfFigures]) -> list[dict]:
    """The distinct ORT_MODEL choices perf recorded, in batch-size order."""
    chosen: list[dict] = []
    for figures in speed.values():
        if figures.ort_model and figures.ort_model not in chosen:
            chosen.append(figures.ort_model)
    return chosen


def _label(backend: str, path: str | None) -> str:
    return f"{backend} ({path})" if path else backend


def _speed_label(chosen: list[dict], accuracy_ort_model: str | None) -> str | None:
    """The speed column's path where the columns name theirs (`accuracy_ort_model` given)."""
    if accuracy_ort_model is None or len(chosen) != 1:
        return None
    c = chosen[0]
    return f"{c['requested']} -> {c['path']}" if c.get("reason") else c["path"]


def _path_lines(chosen: list[dict], accuracy_ort_model: str | None) -> list[str]:
    """Which path each column ran, where ORT_MODEL=auto chose the speed column's."""
    auto = [c for c in chosen if c.get("reason")]
    if not auto:
        return []
    runs = "; ".join(f"{c['path']} ({c['reason']})" for c in auto)
    scored = f"; 精度列 (accuracy) ran {accuracy_ort_model}" if accuracy_ort_model else ""
    return [f"{auto[0].get('setting', 'ORT_MODEL')}={auto[0]['requested']}: 性能列 (speed) ran {runs}{scored}."]


def _matmul_rates(threads: int, ort_model: str, batch_sizes: list[int]) -> dict:
    """The matrix-multiply rate of ORT_MODEL's runtime and precision at the model's shapes, so the
    table's fps can be compared across machines."""
    from tinybert.capabilities import current
    from tinybert.registry import AUTO, auto_order, project_path

    if ort_model == AUTO:  # no perf record says what auto chose (ais_bench): the path it falls back to
        ort_model = auto_order(current().cpu_class).paths[-1]
    return rates_for([row_recipe(project_path(ort_model))], [bs * ROOFLINE_TOKENS for bs in batch_sizes], threads)
