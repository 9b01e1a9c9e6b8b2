"""An ais_bench-compatible runner for the backends that run without an NPU: the same inputs, result folder,
summary and throughput line; dynamic models run length-bucketed, outputs written back by sample index."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from tinybert import INPUT_NAMES
from tinybert.runtimes import open_runtime
from tinybert.errors import ModelFileError, OutputError, UsageError, expect
from tinybert.data.features import FEATURE_DTYPE, MANIFEST_NAME, features_provenance, load_features
from tinybert.fileio import natural_key, os_errors_as
from tinybert.progress import progress as progress_bar
from tinybert.results.resultdir import ResultFolderWriter
from tinybert.runtimes.runner import (CARD_BATCHES, batch_shapes, latency_stats, plan, rows_per_call, run_batches,
                                     throughput, throughput_line, tokens_processed, wall_clock_line)
from tinybert.settings import CALL_TOKENS, default


@dataclass
class InferenceReport:
    result_dir: str
    num_samples: int
    batch_size: float  # the mean rows per call (filler rows included)
    compute_ms: list[float]

    @property
    def throughput(self) -> float:
        return throughput(self.batch_size, self.compute_ms)


def list_input_files(input_dirs: list[str]) -> list[list[str]]:
    """Per input folder, its files in natural order; the folders must pair up file by file."""
    expect(len(input_dirs) == len(INPUT_NAMES), UsageError,
           f"expected {len(INPUT_NAMES)} input folders ({', '.join(INPUT_NAMES)}), got {len(input_dirs)}")
    listings = []
    for folder in input_dirs:
        expect(os.path.isdir(folder), UsageError,
               f"{folder}: expected a folder of feature files (run test/preprocess_data.sh first), found none")
        names = sorted((n for n in os.listdir(folder) if not n.startswith(".")), key=natural_key)
        expect(names, UsageError, f"{folder}: expected feature files, got an empty folder")
        listings.append([os.path.join(folder, n) for n in names])
    first = [os.path.basename(p) for p in listings[0]]
    for folder, paths in zip(input_dirs[1:], listings[1:]):
        names = [os.path.basename(p) for p in paths]
        if names != first:
            only_here = sorted(set(names) - set(first), key=natural_key)[:3]
            only_first = sorted(set(first) - set(names), key=natural_key)[:3]
            raise UsageError(f"{folder}: expected the same {len(first)} file names as {input_dirs[0]}, got "
                             f"{len(names)} files (only here: {only_here}, only in the first: {only_first})")
    return listings


def read_sample(path: str, seq_len: int) -> np.ndarray:
    with open(path, "rb") as handle:
        data = handle.read()
    expect(len(data) == seq_len * FEATURE_DTYPE.itemsize, UsageError,
           f"{path}: expected {seq_len * FEATURE_DTYPE.itemsize} bytes (int64 [1, {seq_len}]), got {len(data)}")
    return np.frombuffer(data, dtype=FEATURE_DTYPE)


def manifest_folder(input_dirs: list[str]) -> str | None:
    """The feature folder when the inputs are `<dir>/{input_ids,segment_ids,input_mask}` with a manifest."""
    parents = {os.path.dirname(os.path.normpath(d)) for d in input_dirs}
    names = tuple(os.path.basename(os.path.normpath(d)) for d in input_dirs)
    if len(parents) == 1 and names == INPUT_NAMES:
        parent = parents.pop() or "."
        if os.path.isfile(os.path.join(parent, MANIFEST_NAME)):
            return parent
    return None


@dataclass
class Inputs:
    arrays: list[np.ndarray]  # input_ids, segment_ids, input_mask, each [N, seq_len]
    stems: list[str]  # output file stem per sample
    infiles: list[list[str]]  # input file paths per sample
    provenance: dict | None  # which features these are, when read through a manifest


def load_inputs(input_dirs: list[str], seq_len: int | None) -> Inputs:
    """Inputs in ais_bench's order. Feature folders with a manifest are checked against it
    (count, names, sizes, checksums); other folders are read as ais_bench reads them."""
    listings = list_input_files(input_dirs)
    stems = [os.path.splitext(os.path.basename(p))[0] for p in listings[0]]
    infiles = [list(paths) for paths in zip(*listings)]
    bin_dir = manifest_folder(input_dirs)
    if bin_dir is not None:
        features, manifest = load_features(bin_dir)
        expect(seq_len is None or features.seq_len == seq_len, UsageError,
               f"{bin_dir}: features have sequence length {features.seq_len}, the model expects {seq_len}")
        return Inputs(list(features.batch(slice(None))), stems, infiles, features_provenance(bin_dir, manifest))
    seq_len = seq_len or os.path.getsize(listings[0][0]) // FEATURE_DTYPE.itemsize
    arrays = [np.stack([read_sample(path, seq_len) for path in paths]) for paths in listings]
    return Inputs(arrays, stems, infiles, None)


def run_inference(model_path: str, input_dirs: list[str], output_root: str, batch_size: int,
                  outfmt: str = default("OUTFMT"), runtime: str = "onnxruntime", output_dirname: str | None = None,
                  progress: bool = True, bucket_edges: str | None = None, call_tokens: int | None = CALL_TOKENS,
                  ort_model: dict | None = None, **runtime_options) -> InferenceReport:
    """Run the model over the input folders and publish one result folder; `bucket_edges` (dynamic models):
    None or "tight" (each batch to its longest sample), gear edges ("16,32,48,64"), or "off" (full length)."""
    expect(batch_size > 0, UsageError, f"expected a positive --batchsize, got {batch_size}")
    started = time.time()
    runner = open_runtime(runtime, model_path, **runtime_options)
    if runner.batch_size is not None:
        expect(runner.batch_size == batch_size, ModelFileError,
               f"{model_path}: the model has a fixed batch size of {runner.batch_size}, expected {batch_size} "
               f"(export it with test/pth2onnx.sh {batch_size})")
    inputs = load_inputs(input_dirs, runner.seq_len)
    arrays, stems, infiles = inputs.arrays, inputs.stems, inputs.infiles
    count = len(stems)
    batches, fill_to = plan(arrays, batch_size, runner.seq_len, runner.batch_size, bucket_edges,
                            source=os.path.dirname(input_dirs[-1]) or input_dirs[-1], call_tokens=call_tokens)
    rows = rows_per_call(batches, fill_to)
    runner.warm_up(batch_shapes(batches))  # per-shape graphs or compiled code made before the per-call timing
    with os_errors_as(OutputError, f"write results under {output_root}"):
        writer = ResultFolderWriter(output_root, outfmt, output_dirname, started=started)
    out_names: dict[int, str] = {}
    nonfinite: list[int] = []  # samples whose logits hold NaN/inf
    bar = progress_bar(None, progress, total=len(batches), desc=f"infer bs{batch_size}", unit="batch")

    def write_outputs(batch, logits):  # filler rows get no output, as in ais_bench
        for row, index in enumerate(batch.indices):
            out_names[int(index)] = writer.write(stems[index], 0, logits[row:row + 1])
            if not np.isfinite(logits[row]).all():
                nonfinite.append(int(index))
        bar.update(1)

    try:
        with os_errors_as(OutputError, f"write results under {output_root}"):
            requests = runner.requests
            tick = time.perf_counter()
            _, compute_ms = run_batches(runner.run, arrays, batches, fill_to=fill_to, on_batch=write_outputs,
                                        requests=requests)
            wall_s = time.perf_counter() - tick
            bar.close()
            args = {"model": model_path, "input": ",".join(input_dirs), "output": output_root,
                    "outfmt": outfmt.upper(), "batchsize": batch_size, "backend": runtime,
                    "threads": runner.threads, "requests_in_flight": requests,
                    "features": inputs.provenance,
                    "bucketing": None if fill_to else (bucket_edges or "tight"),
                    "call_tokens": None if fill_to or bucket_edges == CARD_BATCHES else call_tokens,
                    "tokens_processed": tokens_processed(batches, fill_to)}
            if ort_model is not None:  # the path the settings' ORT_MODEL named (auto: chosen, and why)
                args["ort_model"] = ort_model
            names = [out_names[i] for i in range(count)]
            final = writer.publish(lambda final_dir: _summary(infiles, names, final_dir, compute_ms=compute_ms,
                                                              batch_size=rows, args=args))
    except BaseException:
        bar.close()
        writer.discard()
        raise
    _print_written(final, count, batch_size=rows, compute_ms=compute_ms, wall_s=wall_s, requests=requests,
                   nonfinite=nonfinite)
    return InferenceReport(final, count, rows, compute_ms)


def _print_written(final: str, count: int, batch_size: float, compute_ms: list[float], wall_s: float, requests: int,
                   nonfinite: list[int]) -> None:
    """ais_bench's throughput line, the pass's wall clock, where the outputs went, and NaN/inf outputs."""
    print(throughput_line(batch_size, compute_ms))
    print(wall_clock_line(count, wall_s, requests))
    print(f"[INFO] {count} outputs written to {final}")
    if nonfinite:
        shown = ", ".join(map(str, sorted(nonfinite)[:5])) + (" ..." if len(nonfinite) > 5 else "")
        print(f"[WARN] {len(nonfinite)} of {count} outputs are non-finite (NaN/inf): sample(s) {shown}; "
              "postprocess refuses them unless --skip_nonfinite")


def _summary(infiles: list[list[str]], out_names: list[str], final_dir: str, compute_ms: list[float],
             batch_size: float, args: dict) -> dict:
    zero = latency_stats([0.0] * len(compute_ms))  # host backends copy nothing to a device
    return {
        "filesinfo": {str(index): {"infiles": paths, "outfiles": [os.path.join(final_dir, name)]}
                      for index, (paths, name) in enumerate(zip(infiles, out_names))},
        "args": args,
        "NPU_compute_time": latency_stats(compute_ms),
        "H2D_latency": zero,
        "D2H_latency": zero,
        "throughput": throughput(batch_size, compute_ms),
        "npu_compute_time_list": compute_ms,
        "pid": os.getpid(),
    }
