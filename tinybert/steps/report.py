"""The model card's accuracy/performance table, assembled from what test/eval_all.sh recorded."""

from __future__ import annotations

import os
import re
import time

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
    if foreign(backend):
        return ais_bench_throughput(os.path.join(eval_dir, f"bs{bs}_perf.log")), 1
    json_path = os.path.join(eval_dir, f"bs{bs}_perf.json")
    return perf_figure(read_json(json_path, PipelineError, "the figures test/perf.sh wrote with --json_out"), json_path)


def build_table(eval_dir: str, batch_sizes: list[int], backend: str, model_dir: str,
                ort_model: str = default("ORT_MODEL")) -> str:
    rows, records = [], []
    pth_path = os.path.join(eval_dir, "pth_accuracy.json")
    pth = read_json(pth_path, PipelineError, "PyTorch eager accuracy") if os.path.exists(pth_path) else None
    for bs in batch_sizes:
        accuracy = read_json(os.path.join(eval_dir, f"bs{bs}_accuracy.json"), PipelineError, "postprocess results")
        fps, requests = read_perf(eval_dir, bs, backend)
        records.append({"batch_size": bs, "accuracy": accuracy["accuracy"], "num_samples": accuracy["num_samples"],
                        "throughput": fps, "requests_in_flight": requests, "result_dir": accuracy["result_dir"]})
        pth_cell = f"{pth['accuracy']:.2f}" if pth else "-"
        mark = "*" if requests > 1 else ""
        rows.append(f"| TinyBERT (bs{bs}) | {pth_cell} | {accuracy['accuracy']:.2f} | {accuracy['num_samples']} | "
                    f"{fps:.2f}{mark} |")
    best = max(records, key=lambda r: r["throughput"])
    machine = describe_machine()
    rates = _matmul_rates(machine["physical_cores"], ort_model, batch_sizes)
    versions = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    lines = [
        f"Backend: **{backend}**; checkpoint: `{model_dir}`; measured {time.strftime('%Y-%m-%d')}.",
        f"Machine: {machine['cpu']}, {machine['physical_cores']} physical core(s) / {machine['logical_cpus']} "
        f"logical CPU(s); Python {machine['python']}; {versions}.",
        f"The CPU path's matrix-multiply rate at the model's shapes (M = batch size x {ROOFLINE_TOKENS} tokens), "
        "which CPU fps scale with: " + "; ".join(model_shape_lines(rates)) + ".",
        "",
        f"| 模型 | pth精度 (PyTorch eager) | {backend}推理精度 | 样本数 | {backend}性能 (fps) |",
        "| ---- | ---- | ---- | ---- | ---- |",
        *rows,
        f"| 最优bs (bs{best['batch_size']}) | {pth['accuracy']:.2f} | {best['accuracy']:.2f} | "
        f"{best['num_samples']} | {best['throughput']:.2f} |" if pth else
        f"| 最优bs (bs{best['batch_size']}) | - | {best['accuracy']:.2f} | {best['num_samples']} | {best['throughput']:.2f} |",
        "",
        "精度为百分比 (accuracy in %); 性能单位 fps (sentences per second, `1000*batchsize/mean compute ms`; "
        "* where several requests were in flight, whose per-call times overlap: the wall-clock sentences/s of the "
        "same timed loop).",
    ]
    table = "\n".join(lines) + "\n"
    write_text_atomic(os.path.join(eval_dir, "table.md"), table)
    write_json_atomic(os.path.join(eval_dir, "table.json"), {
        "backend": backend, "model_dir": model_dir, "machine": machine, "model_shape_rates": rates,
        "pth_accuracy": pth["accuracy"] if pth else None, "rows": records})
    return table


def _matmul_rates(threads: int, ort_model: str, batch_sizes: list[int]) -> dict:
    """The matrix-multiply rate of ORT_MODEL's runtime and precision at the model's shapes, so the
    table's fps can be compared across machines."""
    from tinybert.registry import project_path

    return rates_for([row_recipe(project_path(ort_model))], [bs * ROOFLINE_TOKENS for bs in batch_sizes], threads)
