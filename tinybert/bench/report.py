"""The benchmark's record, what it prints while it runs, and the files it writes: benchmark.md (the
table, the row titles and the checks), benchmark.json (everything) and benchmark.png (the plot)."""

from __future__ import annotations

import os

from tinybert.fileio import write_json_atomic, write_text_atomic
from tinybert.registry import Role
from tinybert.settings import GPU_BENCH_MIN_BATCHES


def _shown_path(path: str) -> str:
    """Relative to the working directory when that is shorter: tables get published."""
    relative = os.path.relpath(path)
    return relative if len(relative) < len(os.path.abspath(path)) else os.path.abspath(path)


def machine_line(machine: dict, threads: int) -> str:
    from tinybert.capabilities import current

    return (f"{machine['cpu']}, {machine['physical_cores']} physical core(s) / {machine['logical_cpus']} logical, "
            f"{threads} thread(s), CPU class {current().cpu_class}; Python {machine['python']}; "
            + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()))


def print_header(run, roofline, threads: int, features) -> None:
    from tinybert.machine import describe_machine

    lengths = features.lengths
    print(f"[INFO] machine: {machine_line(describe_machine(), threads)}")
    for line in roofline.header():
        print(f"[INFO] {line}")
    gpu_only = [bs for bs in roofline.m_values if bs not in run.batch_sizes]
    print(f"[INFO] {len(lengths)} sentences of {run.data_file}, real length mean {lengths.mean():.2f} / max "
          f"{lengths.max()} tokens; batch sizes {' '.join(map(str, run.batch_sizes))}"
          + (f", GPU rows also at {' '.join(map(str, gpu_only))} (the sentences repeated to {GPU_BENCH_MIN_BATCHES} "
             "batches)" if gpu_only else "") + f"; median of {run.repeats} pass(es)")


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.0f}%"


def print_row(r: dict) -> None:
    acc = f"{r['accuracy']:.2f}%" if "accuracy" in r else "-"
    print(f"[INFO] bs{r['batch_size']:<3} {r['row']:<5}: {r['sentences_per_s']:8.1f} sent/s  p50 {r['p50_ms']:7.2f} ms  "
          f"p99 {r['p99_ms']:7.2f} ms  acc {acc}  agree {100 * r['agreement_with_A']:.2f}%  "
          f"maxdiff {r['max_abs_diff_to_A']:.2e}  roofline {_percent(r['roofline_fraction'])}", flush=True)


def run_record(run, threads: int, roofline, notes: list[str], features, results: list[dict]) -> dict:
    from tinybert.machine import describe_machine

    lengths = features.lengths
    return {"machine": describe_machine(), "threads": threads, **roofline.record(), "notes": notes,
            "repeats": run.repeats, "checkpoint": _shown_path(run.model_dir), "data": _shown_path(run.data_file),
            "num_samples": len(lengths), "mean_tokens": float(lengths.mean()), "max_tokens": int(lengths.max()),
            "seq_len": run.seq_len, "roofline_lines": roofline.header(), "results": results}


def markdown(report: dict) -> str:
    lines = [
        f"Machine: {machine_line(report['machine'], report['threads'])}.",
        f"Data: {report['num_samples']} sentences (real length mean {report['mean_tokens']:.2f}, max "
        f"{report['max_tokens']} tokens), checkpoint `{report['checkpoint']}`; median of {report['repeats']} pass(es).",
        "",
        "Roofline: the " + "\n  ".join(report["roofline_lines"]),
        *(f"{note}." for note in report["notes"]),
        "",
        "Sentences/s: wall clock over whole passes. Where requests overlap (the `in flight` column), p50/p99 are "
        "per-call times that overlap, so ais_bench's 1000*bs/mean(ms) would understate the pass. Roofline %: the "
        "row's GFLOP/s (GOP/s) over its precision's roofline at its batch size's M: the best rate any engine "
        "reaches in this run, its matrix-multiply chains above or its rows (so at most 100%).",
        "",
        *(f"- {line}" for line in report.get("roofline_best_lines", [])),
        "",
        "| bs | row | sentences/s | x A (GPU rows: x GA) | in flight | p50 ms | p99 ms | accuracy % | agree with A % | "
        "max abs diff to A | tokens processed | GFLOP/s | roofline |",
        "| --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    speed_a = {(r["batch_size"], r["role"] == Role.GPU_BASELINE): r["sentences_per_s"] for r in report["results"]
               if r["role"] in (Role.BASELINE, Role.GPU_BASELINE)}
    for r in report["results"]:
        base = speed_a.get((r["batch_size"], bool(r.get("on_gpu") and r["role"] != Role.ORT_GPU)))
        ratio = r["sentences_per_s"] / base if base else float("nan")
        lines.append(f"| {r['batch_size']} | {r['row']} | {r['sentences_per_s']:.1f} | {ratio:.2f} | "
                     f"{r['requests_in_flight']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r.get('accuracy', float('nan')):.2f} | {100 * r['agreement_with_A']:.2f} | "
                     f"{r['max_abs_diff_to_A']:.1e} | {r['tokens']} | {r['achieved_gflops']:.1f} | "
                     f"{_percent(r['roofline_fraction'])} |")
    lines += _singlestream_lines(report)
    lines += ["", *_row_titles(report["results"]), "",
              "| check | measured | target | met | cause of a miss (measured in this run) |",
              "| --- | --: | --: | --- | --- |"]
    lines += [f"| {c['check']} | {c['value']:.4g} | {c['target']:.4g} | {'yes' if c['met'] else '**no**'} | "
              f"{c.get('cause', '')} |" for c in report["checks"]]
    return "\n".join(lines) + "\n"


def _singlestream_lines(report: dict) -> list[str]:
    """MLPerf LoadGen's SingleStream per project row beside its bs1 throughput; no figure where LoadGen said INVALID."""
    if not report.get("singlestream"):
        return []
    bs1 = {r["row"]: r["sentences_per_s"] for r in report["results"] if r["batch_size"] == 1}
    lines = ["", "SingleStream (MLPerf LoadGen, one sentence per query, true lengths; docs/loadgen.md):", "",
             "| row | LoadGen | p90 ms | p50 ms | queries | sentences/s at bs1 (above) |",
             "| --- | --- | --: | --: | --: | --: |"]
    for s in report["singlestream"]:
        speed = f"{bs1[s['row']]:.1f}" if s["row"] in bs1 else "-"
        if s["valid"]:
            lines.append(f"| {s['row']} | VALID | {s['p90_ms']:.3f} | {s['p50_ms']:.3f} | {s['queries']} | {speed} |")
        else:
            lines.append(f"| {s['row']} | INVALID: {'; '.join(s['reasons'])} | - | - | - | {speed} |")
    return lines


def _row_titles(results: list[dict]) -> list[str]:
    """One line per row: its title and role, and what compiling it took (not counted in its passes)."""
    lines = []
    for key in dict.fromkeys(r["row"] for r in results):
        rows = [r for r in results if r["row"] == key]
        compiled = [r["compile_s"] for r in rows if r.get("compile_s") is not None]
        note = f"; compiled in {sum(compiled):.1f} s in all, before its timed passes" if compiled else ""
        lines.append(f"- **{key}** ({rows[0]['role']}): {rows[0]['title']}{note}")
    return lines


def write_outputs(out_dir: str, report: dict, plot: bool) -> None:
    table = markdown(report)
    write_text_atomic(os.path.join(out_dir, "benchmark.md"), table)
    write_json_atomic(os.path.join(out_dir, "benchmark.json"), report)
    if plot:
        _plot(report, os.path.join(out_dir, "benchmark.png"))
    missed = [c for c in report["checks"] if not c["met"]]
    print(table)
    print(f"[INFO] {len(report['checks']) - len(missed)}/{len(report['checks'])} checks met"
          + (f"; missed: {'; '.join(c['check'] for c in missed)}" if missed else ""))
    print(f"[INFO] wrote benchmark.md, benchmark.json{', benchmark.png' if plot else ''} to {out_dir}")


def _plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    panels = [("CPU", [r for r in results if not r.get("on_gpu")]), ("GPU", [r for r in results if r.get("on_gpu")])]
    panels = [(name, rows) for name, rows in panels if rows]  # a GPU's rows are another scale: their own panel
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 5.6), dpi=120, squeeze=False)
    for ax, (name, rows) in zip(axes[0], panels):
        for key in dict.fromkeys(r["row"] for r in rows):
            points = [(r["batch_size"], r["sentences_per_s"]) for r in rows if r["row"] == key]
            role = next(r["role"] for r in rows if r["row"] == key)
            ax.plot(*zip(*points), marker="o", linestyle="--" if role in (Role.PEER, Role.GPU_PEER) else "-", label=key)
        sizes = sorted({r["batch_size"] for r in rows})
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(bs) for bs in sizes])
        ax.set_ylim(bottom=0)
        ax.set_xlabel("batch size")
        ax.set_ylabel("sentences / s (whole set)")
        ax.set_title(f"TinyBERT SST-2, {name}: {_device(report, name)} (dashed: peers)", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _device(report: dict, panel: str) -> str:
    if panel == "CPU":
        return f"{report['machine']['cpu'][:40]}, {report['threads']} threads"
    peaks = report.get("gpu_peaks") or {}
    return next(iter(peaks.values()))["device"] if peaks else "GPU"
