"""Side-by-side benchmark of the ways to run the model, in one process and one run.

Rows (all on the same features, each batch size in turn, rows interleaved so drift hits all alike):
  A  PyTorch eager on the .pth checkpoint, padded to the full length (the model card's "pth" path)
  B  ONNX Runtime on the card's simplified static export, padded, last batch filled
  C  the project's fp32 path (ORT_MODEL=fast): last layer at [CLS] only, length-bucketed batches,
     REQUESTS calls in flight; C1 the same with one call on all threads; C16 with gear buckets
  D  the project's dynamic int8 path (ORT_MODEL=int8); S its calibrated static int8 (int8_static)
  OV* peers: OpenVINO fp32 / bf16 / NNCF static int8 on the same fast export and batches, each with
     its LATENCY hint (one request) and its THROUGHPUT hint (its optimal number of async requests)
  E/F ONNX Runtime CUDA fp32 / TensorRT fp16 on the dynamic model, where those providers exist

Per row and batch size: sentences/s over the whole set (wall time of a pass, median of `repeats`),
p50/p99 time per call, accuracy, agreement with A, max abs logit difference to A, and the
fraction of this machine's measured fp32 (int8 rows: int8) matrix-multiply rate that the FLOPs of
the tokens the row actually processed (padding and filler included) represent.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from .benchmark_checks import evaluate_targets
from .errors import UsageError, expect
from .fileio import reserve_dir, write_json_atomic, write_text_atomic
from .machine import describe_machine, physical_cores
from .roofline import batch_flops, measured_int8_gops, measured_sgemm_gflops, rates_line
from .runner import (Batch, consecutive_batches, default_gears, plan_batches, real_lengths, run_batches,
                     run_batches_overlapped, tokens_processed)
from .settings import BATCH_SIZES, OPSET, SEQ_LEN, TIMESTAMP_FORMAT, model_path


@dataclass
class Row:
    key: str
    title: str
    make_backend: object  # batch_size -> a backend: .run(input_ids, segment_ids, input_mask) -> logits
    bucketed: bool  # length-bucketed batches, else full-length consecutive batches
    fill: bool = False  # a static model: the last batch is filled to the batch size
    edges: tuple | None = None  # bucket edges for bucketed rows (None: tight)
    overlapped: bool = False  # the backend's own asynchronous queue (run_overlapped), not the runner's requests
    peer: bool = False  # another runtime, configured at its documented best
    precision: str = "fp32"  # fp32, int8 or bf16: which roofline, and which gate
    cls_only: bool = False  # runs the fast export (last layer at [CLS] only): fewer FLOPs
    device: str = "cpu"  # the GPU rows are not held against the CPU peers


# ---------------------------------------------------------------- rows

def build_rows(model_dir: str, work_dir: str, features_dir: str, seq_len: int, threads: int, opset: int,
               gpu: bool = True, calibration_file: str | None = None) -> tuple[list[Row], list[str]]:
    from .backends import create_backend
    from .export import export, export_fast_models

    export_fast_models(model_dir, work_dir, opset, seq_len, features_dir)
    ort = lambda path, **o: create_backend("onnxruntime", path, threads=threads, **o)  # noqa: E731
    fast = model_path("fast", work_dir)

    def static_model(bs):
        export(model_dir, bs, work_dir, opset, seq_len, features_dir)
        return ort(model_path("sim", work_dir, bs))

    torch_model = create_backend("pytorch", model_dir, threads=threads)
    requests = ort(fast).requests
    rows = [
        Row("A", "PyTorch eager, padded to 64 (the card's pth path)", lambda bs: torch_model, bucketed=False),
        Row("B", "ONNX Runtime, the card's static simplified model, padded", static_model, bucketed=False, fill=True),
        Row("C", f"ONNX Runtime fp32, last layer at [CLS] only, length-bucketed, {requests} request(s) in flight "
                 "(project default, ORT_MODEL=fast)", lambda bs: ort(fast), bucketed=True, cls_only=True),
        Row("C1", "as C, one request on all threads (REQUESTS=1)", lambda bs: ort(fast, requests=1), bucketed=True,
            cls_only=True),
        # C with the fixed Ascend gears instead of tight buckets: the measurement behind BUCKET_EDGES.
        Row("C16", f"as C, buckets at the gears {'/'.join(map(str, default_gears(seq_len)))} instead of tight",
            lambda bs: ort(fast), bucketed=True, edges=default_gears(seq_len), cls_only=True),
        Row("D", "ONNX Runtime dynamic int8 of C, length-bucketed, requests as C (ORT_MODEL=int8)",
            lambda bs: ort(model_path("int8", work_dir)), bucketed=True, precision="int8", cls_only=True),
    ]
    notes = []
    more_rows, more_notes = _static_int8_and_peer_rows(model_dir, work_dir, features_dir, seq_len, threads,
                                                       calibration_file, ort)
    rows += more_rows
    notes += more_notes
    if gpu:
        gpu_rows, note = _gpu_rows(model_path("dynamic", work_dir), ort)
        rows += gpu_rows
        notes.append(note)
    return rows, notes


def _static_int8_and_peer_rows(model_dir, work_dir, features_dir, seq_len, threads, calibration_file, ort):
    """S: the project's static int8 path; OpenVINO peers on the same fast export: fp32, bf16 where the
    CPU has it, NNCF static int8 (transformer preset) on the same calibration sample, each with the
    LATENCY hint and with the THROUGHPUT hint and OpenVINO's async queue."""
    from .backends import create_backend
    from .capabilities import current, installed
    from .export import export_static_int8
    from .export.calibrated import calibration_batches, calibration_sample
    from .export.graphs import quantize_nncf_int8
    from .settings import CALIB_SAMPLES, CALIB_SEED

    rows, notes = [], []
    if calibration_file:
        export_static_int8(model_dir, calibration_file, work_dir, features_dir=features_dir)
        rows.append(Row("S", "ONNX Runtime static int8 of C (calibrated QDQ), length-bucketed, requests as C "
                             "(ORT_MODEL=int8_static)", lambda bs: ort(model_path("int8_static", work_dir)),
                        bucketed=True, precision="int8", cls_only=True))
    else:
        notes.append("row S and the OpenVINO int8 rows skipped: no calibration file (CALIB_FILE)")
    if not installed("openvino"):
        return rows, notes + ["OpenVINO rows skipped: openvino is not installed (pip install openvino nncf)"]
    fast = model_path("fast", work_dir)
    ov = lambda path, **o: create_backend("openvino", path, threads=threads, **o)  # noqa: E731

    def peer_pair(key, title, path, row_precision, **options):  # options (precision=...) go to the backend
        return [Row(key, f"{title}, LATENCY hint", lambda bs: ov(path, **options), bucketed=True, peer=True,
                    precision=row_precision, cls_only=True),
                Row(f"{key}t", f"{title}, THROUGHPUT hint, async requests", lambda bs: ov(path, hint="THROUGHPUT", **options),
                    bucketed=True, overlapped=True, peer=True, precision=row_precision, cls_only=True)]

    rows += peer_pair("OV", "OpenVINO fp32 on C's model", fast, "fp32")
    if current().native_bf16:
        rows += peer_pair("OVb", "OpenVINO bf16 on C's model (ORT_MODEL=bf16 runs it)", fast, "bf16",
                          precision="bf16")
    else:
        notes.append("OpenVINO bf16 rows skipped: this CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag)")
    if calibration_file and not installed("nncf"):
        notes.append("OpenVINO int8 rows skipped: nncf is not installed (pip install nncf)")
    elif calibration_file:
        sentences, _ = calibration_sample(calibration_file, CALIB_SAMPLES, CALIB_SEED)
        xml = model_path("ov_int8", work_dir)
        quantize_nncf_int8(fast, xml, calibration_batches(sentences, os.path.join(model_dir, "vocab.txt"), seq_len))
        rows += peer_pair("OV8", "OpenVINO int8 static (NNCF, transformer preset) of C's model", xml, "int8")
    notes.append("the OpenVINO rows run C's model (last layer at [CLS] only): OpenVINO is faster on it than on the "
                 "plain dynamic export, so it is the stronger peer")
    notes.append("CTranslate2 rows absent: not built yet (its converter needs the checkpoint re-saved as a Hugging "
                 "Face BERT folder, and the relu classifier head applied outside it)")
    return rows, notes


def _gpu_rows(dynamic_model: str, ort) -> tuple[list[Row], str]:
    from .capabilities import ort_providers

    available = set(ort_providers())
    rows = []
    if "CUDAExecutionProvider" in available:
        rows.append(Row("E", "ONNX Runtime CUDA fp32, length-bucketed",
                        lambda bs: ort(dynamic_model, providers=["CUDAExecutionProvider"], requests=1), bucketed=True,
                        device="gpu"))
    if "TensorrtExecutionProvider" in available:
        trt = [("TensorrtExecutionProvider", {"trt_fp16_enable": True}), "CUDAExecutionProvider"]
        rows.append(Row("F", "ONNX Runtime TensorRT fp16, length-bucketed",
                        lambda bs: ort(dynamic_model, providers=trt, requests=1), bucketed=True, precision="fp16",
                        device="gpu"))
    if rows:
        return rows, f"GPU rows: {', '.join(r.key for r in rows)} (providers {sorted(available)})"
    return [], ("GPU rows skipped: this onnxruntime has no CUDA or TensorRT execution provider "
                f"(available: {', '.join(sorted(available))}); install onnxruntime-gpu on a GPU machine")


def plan_for(row: Row, lengths: np.ndarray, seq_len: int, batch_size: int) -> list[Batch]:
    if row.bucketed:
        return plan_batches(lengths, batch_size, row.edges)
    return consecutive_batches(len(lengths), batch_size, seq_len)


def time_row(row: Row, arrays, lengths, seq_len: int, batch_size: int, repeats: int, config) -> dict:
    backend = row.make_backend(batch_size)
    batches = plan_for(row, lengths, seq_len, batch_size)
    fill_to = batch_size if row.fill else None
    if row.overlapped:
        run = lambda arrays_, batches_, fill_to_: run_batches_overlapped(backend, arrays_, batches_)  # noqa: E731
    else:
        run = functools.partial(run_batches, backend.run, requests=getattr(backend, "requests", 1))
    run(arrays, batches[:3], fill_to)  # warm-up
    passes = []
    for _ in range(repeats):
        tick = time.perf_counter()
        logits, compute_ms = run(arrays, batches, fill_to)
        passes.append((time.perf_counter() - tick, logits, compute_ms))
    wall, logits, compute_ms = sorted(passes, key=lambda p: p[0])[len(passes) // 2]  # median pass
    flops = sum(batch_flops(config, fill_to or len(b.indices), b.length, row.cls_only) for b in batches)
    tokens = tokens_processed(batches, fill_to)
    return {"wall_s": wall, "sentences_per_s": len(lengths) / wall, "p50_ms": float(np.percentile(compute_ms, 50)),
            "p99_ms": float(np.percentile(compute_ms, 99)), "batches": len(batches), "tokens": int(tokens),
            "requests_in_flight": getattr(backend, "requests_in_flight" if row.overlapped else "requests", 1),
            "gflop": flops / 1e9, "achieved_gflops": flops / wall / 1e9, "logits": logits}


# ---------------------------------------------------------------- the run

def run_benchmark(model_dir: str, tsv_path: str, output_root: str = "./benchmark_results",
                  batch_sizes=BATCH_SIZES, repeats: int = 3, seq_len: int = SEQ_LEN, opset: int = OPSET,
                  threads: int | None = None, gpu: bool = True, plot: bool = True,
                  calibration_file: str | None = None) -> dict:
    expect(repeats > 0, UsageError, f"expected a positive --repeats, got {repeats}")
    threads = threads or physical_cores()
    started = time.strftime(TIMESTAMP_FORMAT)
    os.makedirs(output_root, exist_ok=True)
    # Features and models are scratch: the results folder keeps only the table, JSON and plot, and is
    # made once there is something to put in it (a run that fails leaves no empty folder).
    with tempfile.TemporaryDirectory(prefix=".benchmark-work-", dir=output_root) as work_dir:
        report = _measure_all(model_dir, tsv_path, work_dir, batch_sizes, repeats, seq_len, opset, threads, gpu,
                              calibration_file)
    out_dir = reserve_dir(output_root, f"benchmark-{started}")
    _write_outputs(out_dir, report, plot)
    return report


def _measure_all(model_dir, tsv_path, work_dir, batch_sizes, repeats, seq_len, opset, threads, gpu,
                 calibration_file=None) -> dict:
    from .features import load_features, preprocess
    from .modeling import load_bert_config

    features_dir = os.path.join(work_dir, "bert_bin")
    preprocess(tsv_path, os.path.join(model_dir, "vocab.txt"), features_dir, seq_len, progress=False)
    features, manifest = load_features(features_dir)
    arrays = features.batch(slice(None))
    lengths = real_lengths(arrays[2], features_dir)
    config = load_bert_config(model_dir)
    machine = describe_machine()
    sgemm, int8 = measured_sgemm_gflops(threads), measured_int8_gops(threads)
    _print_header(machine, sgemm, int8, threads, len(lengths), lengths)
    # bf16/fp16 rows are held against the fp32 rate: no half-precision matrix multiply is measured here.
    rate = {"fp32": sgemm["gflops"], "bf16": sgemm["gflops"], "fp16": sgemm["gflops"], "int8": int8["gops"]}
    rows, notes = build_rows(model_dir, work_dir, features_dir, seq_len, threads, opset, gpu, calibration_file)
    for note in notes:
        print(f"[INFO] {note}")
    results = []
    for bs in batch_sizes:
        reference = None
        for row in rows:
            figures = time_row(row, arrays, lengths, seq_len, bs, repeats, config)
            logits = figures.pop("logits")
            reference = logits if row.key == "A" else reference
            figures.update(_quality(logits, reference, features.labels))
            figures.update(row=row.key, title=row.title, batch_size=bs, peer=row.peer, overlapped=row.overlapped,
                           precision=row.precision, device=row.device,
                           roofline_fraction=figures["achieved_gflops"] / rate[row.precision],
                           roofline_sentences_per_s=rate[row.precision] * len(lengths) / figures["gflop"])
            results.append(figures)
            _print_row(figures)
    report = {"machine": machine, "threads": threads, "sgemm": sgemm, "int8_matmul": int8, "notes": notes,
              "repeats": repeats,
              "checkpoint": _shown_path(model_dir), "data": _shown_path(tsv_path), "num_samples": len(lengths),
              "mean_tokens": float(lengths.mean()), "max_tokens": int(lengths.max()), "seq_len": seq_len,
              "results": results}
    report["checks"] = evaluate_targets(results)
    return report


def _shown_path(path: str) -> str:
    """Relative to the working directory when that is shorter: tables get published."""
    relative = os.path.relpath(path)
    return relative if len(relative) < len(os.path.abspath(path)) else os.path.abspath(path)


def _quality(logits, reference, labels) -> dict:
    out = {"agreement_with_A": float((logits.argmax(1) == reference.argmax(1)).mean()),
           "max_abs_diff_to_A": float(np.abs(logits - reference).max())}
    if labels is not None:
        out["accuracy"] = 100.0 * float((logits.argmax(1) == labels).mean())
    return out


# ---------------------------------------------------------------- output

def _print_header(machine, sgemm, int8, threads, count, lengths) -> None:
    print(f"[INFO] machine: {machine['cpu']}; {machine['physical_cores']} physical core(s), "
          f"{machine['logical_cpus']} logical; {threads} thread(s); Python {machine['python']}; "
          + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()))
    print(f"[INFO] measured fp32 matrix multiply: {sgemm['gflops']:.1f} GFLOP/s "
          f"(best of {', '.join(f'{k} {v:.1f}' for k, v in sgemm['by_library'].items())}; "
          f"square sizes {sgemm['sizes']})")
    print(f"[INFO] measured int8 matrix multiply: {int8['gops']:.1f} GOP/s ({int8['dot_product']}; best of "
          f"{', '.join(f'{k} {v:.1f}' for k, v in int8['by_library'].items())})")
    print(f"[INFO] {count} sentences, real length mean {lengths.mean():.2f} / max {lengths.max()} tokens")


def _print_row(r: dict) -> None:
    acc = f"{r['accuracy']:.2f}%" if "accuracy" in r else "-"
    print(f"[INFO] bs{r['batch_size']:<3} {r['row']}: {r['sentences_per_s']:8.1f} sent/s  p50 {r['p50_ms']:7.2f} ms  "
          f"p99 {r['p99_ms']:7.2f} ms  acc {acc}  agree {100 * r['agreement_with_A']:.2f}%  "
          f"maxdiff {r['max_abs_diff_to_A']:.2e}  roofline {100 * r['roofline_fraction']:.0f}%")


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['physical_cores']} physical core(s) / {m['logical_cpus']} logical, "
        f"{report['threads']} thread(s); Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items()) + ".",
        rates_line(report["sgemm"], report["int8_matmul"]) + " Data: "
        f"{report['num_samples']} sentences (real length mean {report['mean_tokens']:.2f}, max "
        f"{report['max_tokens']} tokens), checkpoint `{report['checkpoint']}`; median of {report['repeats']} pass(es).",
        *(f"{note}." for note in report["notes"]),
        "",
        "Sentences/s: wall clock over whole passes. Where requests overlap (the `in flight` column), p50/p99 are "
        "per-call times that overlap, so ais_bench's 1000*bs/mean(ms) would understate the pass. Roofline: the "
        "row's GFLOP/s (GOP/s) over the fp32 (int8) rate above.",
        "",
        "| bs | row | sentences/s | x A | in flight | p50 ms | p99 ms | accuracy % | agree with A % | "
        "max abs diff to A | tokens processed | GFLOP/s | roofline % |",
        "| --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    speed_a = {r["batch_size"]: r["sentences_per_s"] for r in report["results"] if r["row"] == "A"}
    for r in report["results"]:
        ratio = r["sentences_per_s"] / speed_a[r["batch_size"]] if r["batch_size"] in speed_a else float("nan")
        lines.append(f"| {r['batch_size']} | {r['row']} | {r['sentences_per_s']:.1f} | {ratio:.2f} | "
                     f"{r['requests_in_flight']} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r.get('accuracy', float('nan')):.2f} | {100 * r['agreement_with_A']:.2f} | "
                     f"{r['max_abs_diff_to_A']:.1e} | {r['tokens']} | {r['achieved_gflops']:.1f} | "
                     f"{100 * r['roofline_fraction']:.0f} |")
    titles = {r["row"]: r["title"] for r in report["results"]}
    lines += ["", *(f"- **{k}**: {v}" for k, v in titles.items()), "", "| check | measured | target | met |",
              "| --- | --: | --: | --- |"]
    lines += [f"| {c['check']} | {c['value']:.4g} | {c['target']:.4g} | {'yes' if c['met'] else '**no**'} |"
              for c in report["checks"]]
    return "\n".join(lines) + "\n"


def _write_outputs(out_dir: str, report: dict, plot: bool) -> None:
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

    fig, ax = plt.subplots(figsize=(7.5, 5.2), dpi=120)
    for key in sorted({r["row"] for r in report["results"]}):
        points = [(r["batch_size"], r["sentences_per_s"]) for r in report["results"] if r["row"] == key]
        title = next(r["title"] for r in report["results"] if r["row"] == key)
        ax.plot(*zip(*points), marker="o", label=f"{key}: {title}")
    sizes = sorted({r["batch_size"] for r in report["results"]})
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(bs) for bs in sizes])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("batch size")
    ax.set_ylabel("sentences / s (whole dev set)")
    ax.set_title(f"TinyBERT SST-2, {report['machine']['cpu'][:40]}, {report['threads']} threads", fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.legend(loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    fig.savefig(path)
    plt.close(fig)
