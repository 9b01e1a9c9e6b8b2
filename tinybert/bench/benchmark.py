"""Side-by-side benchmark of the registry's paths, each run as the steps run it, in one process and one run,
so that the rows' figures compare: rows interleaved on the same features, drift hits all alike."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinybert.errors import BackendUnavailableError, UsageError, expect
from tinybert.fileio import reserve_dir
from tinybert.bench.rows import rows as all_rows
from tinybert.registry import Role, RunPath
from tinybert.runtimes.needs import unmet_needs
from tinybert.bench.roofline import Timing
from tinybert.settings import (BATCH_SIZES, CALIB_SAMPLES, CALIB_SEED, CALL_TOKENS, GPU_BENCH_BATCH_SIZES,
                               GPU_BENCH_MIN_BATCHES, OPSET, REPEATS, SEQ_LEN, TIMESTAMP_FORMAT, default)


@dataclass(frozen=True)
class BenchmarkRun:
    """What one benchmark run measures, and where it writes."""

    model_dir: str  # the TinyBERT checkpoint folder
    data_file: str  # a labelled SST-2 TSV
    output_root: str = default("BENCH_DIR")
    batch_sizes: tuple[int, ...] = BATCH_SIZES
    repeats: int = REPEATS
    seq_len: int = SEQ_LEN
    opset: int = OPSET
    threads: int | None = None  # default: physical cores
    gpu: bool = True
    plot: bool = True
    calibration_file: str | None = None  # CALIB_FILE: the static int8 rows need it
    calibration_samples: int = CALIB_SAMPLES
    calibration_seed: int = CALIB_SEED
    rows: tuple[str, ...] | None = None  # row labels to run (None: every row this machine can run)
    call_tokens: int = CALL_TOKENS  # the project rows' calls: at most this many positions (0: one per batch)
    roofline_timing: Timing = Timing()  # how the matrix-multiply rates are timed (tests: a quick one)
    work_dir: str | None = None  # where features and models are made and kept (None: a scratch folder)
    export_min_agreement: float | None = None  # the static int8 export's bar (None: MIN_AGREEMENT)
    gpu_batch_sizes: tuple[int, ...] = GPU_BENCH_BATCH_SIZES  # the GPU rows' extra batch sizes (data repeated)
    record_dir: str | None = None  # where the GPU speed record goes (GPU_MODEL=auto reads it); None: MODEL_DIR
    # (runtime, features_dir, out_root) -> a project row's SingleStream latencies: the cli passes LoadGen's
    latency: Callable | None = None
    device: int = 0  # DEVICE: the GPU the GPU rows, their roofline chains and its peak are on


# ---------------------------------------------------------------- rows

def unmet_need(path: RunPath, run: BenchmarkRun) -> str | None:
    """Why this machine (or this run) cannot run the path, or None."""
    if path.on_gpu and not run.gpu:
        return "GPU rows not asked for (--no_gpu)"
    # a calibration file named is enough here: a failed export takes its rows out with the reason (Models.prepare)
    return next(unmet_needs(path, calibration="named", calibration_file=run.calibration_file), None)


def select_rows(run: BenchmarkRun) -> tuple[list[RunPath], list[str]]:
    """The paths this run measures, A first, and a note for each one skipped."""
    rows, notes, every = [], [], all_rows()
    for path in every:
        if run.rows is not None and path.row not in run.rows and path.role != Role.BASELINE:
            continue
        reason = unmet_need(path, run)
        if reason:
            notes.append(f"row {path.row} ({path.title}) skipped: {reason}")
        else:
            rows.append(path)
    unknown = sorted(set(run.rows or ()) - {p.row for p in every})
    expect(not unknown, UsageError, f"expected --rows among {', '.join(p.row for p in every)}, got {', '.join(unknown)}")
    return rows, notes


class Models:
    """The run's models, exported up front (one failing its check takes its rows out, with the reason),
    and its backends, opened once per (row, model file) as the steps open them."""

    def __init__(self, run: BenchmarkRun, work_dir: str, features_dir: str, threads: int):
        from tinybert.prepare import Calibration

        self.run, self.work_dir, self.features_dir, self.threads = run, work_dir, features_dir, threads
        self.calibration = Calibration(run.calibration_file, run.calibration_samples, run.calibration_seed,
                                       run.export_min_agreement) if run.calibration_file else None
        self._open: dict = {}
        self._ready: dict = {}

    def prepare(self, rows: list[RunPath]) -> tuple[list[RunPath], list[str]]:
        """Prepare what the rows need (`tinybert.prepare`, as every step); the rows whose models could be made, and a
        note for each other."""
        from tinybert.errors import PipelineError

        kept, notes, failed = [], [], {}
        for path in rows:
            for bs in self.run.batch_sizes:
                key = self._key(path, bs)
                if key not in failed:
                    try:
                        self.ready(path, bs)
                        failed[key] = None
                    except PipelineError as exc:
                        failed[key] = str(exc)
                if failed[key]:
                    notes.append(f"row {path.row} ({path.title}) skipped: its model failed: {failed[key]}")
                    break
            else:
                kept.append(path)
        return kept, notes

    def _key(self, path: RunPath, batch_size: int) -> tuple:
        from tinybert.model_kinds import kind
        from tinybert.registry import CHECKPOINT

        per_batch = path.model != CHECKPOINT and kind(path.model).per_batch_size
        return path.row, path.model, batch_size if per_batch else None

    def ready(self, path: RunPath, batch_size: int):
        """The row's model at `batch_size`, prepared once per model file."""
        from tinybert.prepare import ModelRequest, prepare

        key = self._key(path, batch_size)
        if key not in self._ready:
            self._ready[key] = prepare(ModelRequest(path=path, model_dir=self.work_dir, ckpt_dir=self.run.model_dir,
                                                    batch_size=batch_size, features_dir=self.features_dir,
                                                    calibration=self.calibration, threads=self.threads,
                                                    opset=self.run.opset, seq_len=self.run.seq_len,
                                                    device=self.run.device))
        return self._ready[key]

    def runtime(self, path: RunPath, batch_size: int):
        key = self._key(path, batch_size)
        if key not in self._open:
            self._open[key] = self.ready(path, batch_size).open()
        return self._open[key]


# ---------------------------------------------------------------- the run

def run_benchmark(run: BenchmarkRun) -> dict:
    """Measure every row at every batch size; write benchmark.md/.json/.png into a new folder."""
    from tinybert.bench.report import write_outputs

    expect(run.repeats > 0, UsageError, f"expected a positive --repeats, got {run.repeats}")
    started = time.strftime(TIMESTAMP_FORMAT)
    os.makedirs(run.output_root, exist_ok=True)
    # Features and models are scratch: the results folder keeps only the table, JSON and plot, and is
    # made once there is something to put in it (a run that fails leaves no empty folder).
    if run.work_dir:
        os.makedirs(run.work_dir, exist_ok=True)
        report = _measure_all(run, run.work_dir)
    else:
        with tempfile.TemporaryDirectory(prefix=".benchmark-work-", dir=run.output_root) as work_dir:
            report = _measure_all(run, work_dir)
    write_outputs(reserve_dir(run.output_root, f"benchmark-{started}"), report, run.plot)
    return report


def _measure_all(run: BenchmarkRun, work_dir: str) -> dict:
    from tinybert.bench.checks import evaluate_targets
    from tinybert.bench.report import print_header, print_row, run_record
    from tinybert.bench.timing import RowTiming
    from tinybert.capabilities import current
    from tinybert.data.features import load_features, preprocess
    from tinybert.model.modeling import load_bert_config, vocab_path
    from tinybert.bench.roofline import Roofline

    threads = run.threads or current().physical_cores
    features_dir = os.path.join(work_dir, "bert_bin")
    preprocess(run.data_file, vocab_path(run.model_dir), features_dir, run.seq_len, progress=False)
    features, _ = load_features(features_dir)
    arrays = features.batch(slice(None))
    models = Models(run, work_dir, features_dir, threads)
    rows, notes = select_rows(run)
    rows, failed = models.prepare(rows)
    notes += failed
    gpu_sizes = tuple(bs for bs in run.gpu_batch_sizes if bs not in run.batch_sizes) if any(
        p.on_gpu for p in rows) else ()
    sizes = (*run.batch_sizes, *gpu_sizes)
    roofline = Roofline(load_bert_config(run.model_dir), threads, rows, mean_tokens=float(features.lengths.mean()),
                        batch_sizes=run.batch_sizes, timing=run.roofline_timing, gpu_batch_sizes=gpu_sizes,
                        device=run.device)
    print_header(run, roofline, threads, features)
    for note in notes:
        print(f"[INFO] {note}")
    results, reference = [], None
    for bs in sizes:
        data = _repeated(features, arrays, bs, gpu_only=bs not in run.batch_sizes)
        timings = []
        for path in [p for p in rows if p.on_gpu or bs in run.batch_sizes]:
            try:
                timings.append((path, RowTiming(path, models.runtime(path, bs), data.arrays, bs, run.call_tokens)))
            except BackendUnavailableError as exc:  # passed its needs, failed to open or compile: the rest go on
                rows.remove(path)
                notes.append(f"row {path.row} ({path.title}) skipped from bs{bs} on: {exc}")
                print(f"[INFO] {notes[-1]}")
        for _ in range(run.repeats):  # round by round: drift hits every row alike
            for _, timing in timings:
                timing.one_pass()
        at_bs = []
        for path, timing in timings:
            figures = timing.figures()
            logits = figures.pop("logits")
            reference = logits if path.role == Role.BASELINE else reference  # A's, kept for the GPU-only sizes
            figures.update(_quality(logits, np.tile(reference, (data.copies, 1)), data.labels))
            figures.update(roofline.figures(path, bs, figures.pop("batches"), figures.pop("fill_to"), figures["wall_s"]))
            figures.update(row=path.row, title=path.title, batch_size=bs, role=path.role, gate=path.gate, on_gpu=path.on_gpu,
                           precision=path.precision, runtime=path.runtime, sentences=len(data.arrays[0]))
            at_bs.append(figures)
        lines = roofline.finish(bs, at_bs)  # the best of the batch size's rows counts, so rows print after
        for figures in at_bs:
            print_row(figures)
        for line in lines:
            print(f"[INFO] {line}")
        results += at_bs
    report = run_record(run, threads, roofline, notes=notes, features=features, results=results)
    if run.latency is not None:  # one sentence per query, at bs1 as a user's request comes
        report["singlestream"] = [{"row": path.row, "title": path.title,
                                   **run.latency(models.runtime(path, 1), features_dir, run.output_root)}
                                  for path in rows if path.role == Role.PROJECT and not path.on_gpu]
    report["checks"] = evaluate_targets(results)
    if any(r["role"] == Role.GPU_PROJECT for r in results):
        from tinybert.bench.gpu_choice import write_speed_record

        report["gpu_speed_record"] = write_speed_record(results, run.model_dir, run.record_dir or default("MODEL_DIR"),
                                                         device=run.device)
    return report


@dataclass(frozen=True)
class _Data:
    arrays: tuple
    labels: np.ndarray | None
    copies: int  # the run's sentences repeated this many times


def _repeated(features, arrays, batch_size: int, gpu_only: bool) -> _Data:
    """The run's sentences; at a GPU-only batch size repeated to GPU_BENCH_MIN_BATCHES batches (same order)."""
    copies = max(1, -(-GPU_BENCH_MIN_BATCHES * batch_size // len(arrays[0]))) if gpu_only else 1
    labels = features.labels
    return _Data(tuple(np.tile(a, (copies, 1)) for a in arrays), None if labels is None else np.tile(labels, copies),
                 copies)


def _quality(logits, reference, labels) -> dict:
    out = {"agreement_with_A": float((logits.argmax(1) == reference.argmax(1)).mean()),
           "max_abs_diff_to_A": float(np.abs(logits - reference).max())}
    if labels is not None:
        out["accuracy"] = 100.0 * float((logits.argmax(1) == labels).mean())
    return out
