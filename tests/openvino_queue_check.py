"""OpenVINO THROUGHPUT peer check (a script, not part of the pytest run): the backend's
`run_overlapped` (an AsyncInferQueue with a completion callback) against the way it ran before
(its optimal number of infer requests started round-robin, each waited for before its reuse, no
callback), on the same compiled model, features and length-bucketed batches, passes interleaved.
Prints sentences/s (best and median of --repeats) per batch size, and checks that both give the
same logits as the synchronous `run`.

    .venv/bin/python tests/openvino_queue_check.py [--model TinyBERT_fast.onnx | --model_dir DIR]
        [--data_file dev.tsv] [--batch_sizes 1 8 32] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

DEFAULT_CHECKPOINT = REPO.parent / "shared" / "models" / "tinybert-sst2-demo"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "SST-2" / "dev.tsv"


def round_robin_pass(backend, inputs, on_output) -> None:
    """The previous `run_overlapped`: requests started in turn, each waited for before its reuse."""
    from tinybert import INPUT_NAMES

    requests = [backend.compiled.create_infer_request() for _ in range(max(1, backend.requests_in_flight))]
    started: list[int | None] = [None] * len(requests)

    def finish(slot):
        requests[slot].wait()
        on_output(started[slot], np.array(requests[slot].get_output_tensor(0).data, dtype=np.float32))

    for position, arrays in enumerate(inputs):
        slot = position % len(requests)
        if started[slot] is not None:
            finish(slot)
        requests[slot].start_async(dict(zip(INPUT_NAMES, arrays)))
        started[slot] = position
    for slot, position in enumerate(started):
        if position is not None:
            finish(slot)


class RoundRobin:
    """The backend with the previous `run_overlapped`, for `runner.run_batches_overlapped`."""

    def __init__(self, backend):
        self.backend = backend

    def run_overlapped(self, inputs, on_output) -> None:
        round_robin_pass(self.backend, inputs, on_output)


def compare(backend, arrays, lengths, batch_size: int, repeats: int) -> dict:
    from tinybert.runtimes.runner import plan_batches, run_batches, run_batches_overlapped

    batches = plan_batches(lengths, batch_size)
    reference, _ = run_batches(backend.run, arrays, batches)
    ways = {"round-robin, no callback (before)": RoundRobin(backend), "AsyncInferQueue + callback (now)": backend}
    walls = {name: [] for name in ways}
    for name, way in ways.items():  # warm-up, and the same logits as the synchronous path
        logits, _ = run_batches_overlapped(way, arrays, batches)
        if not np.array_equal(logits, reference):
            sys.exit(f"[ERROR] {name} at bs{batch_size}: logits differ from the synchronous run "
                     f"(max abs difference {np.abs(logits - reference).max():.3g})")
    for _ in range(repeats):
        for name, way in ways.items():
            tick = time.perf_counter()
            run_batches_overlapped(way, arrays, batches)
            walls[name].append(time.perf_counter() - tick)
    return {name: (len(lengths) / min(w), len(lengths) / statistics.median(w)) for name, w in walls.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="TinyBERT_fast.onnx (default: exported from --model_dir)")
    p.add_argument("--model_dir", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--data_file", type=Path, default=DEFAULT_DATA)
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    from tinybert.runtimes import open_runtime
    from tinybert.data.features import load_features, preprocess
    from tinybert.machine import cpu_model
    from tinybert.runtimes.runner import real_lengths

    with tempfile.TemporaryDirectory(prefix="tinybert-ov-queue-") as tmp:
        features_dir = os.path.join(tmp, "bert_bin")
        preprocess(str(a.data_file), str(a.model_dir / "vocab.txt"), features_dir, 64, progress=False)
        model = a.model
        if model is None:
            from tinybert.export import export_fast_models
            from tinybert.settings import model_path

            export_fast_models(str(a.model_dir), tmp, features_dir=features_dir)
            model = Path(model_path("fast", tmp))
        features, _ = load_features(features_dir)
        arrays = features.batch(slice(None))
        lengths = real_lengths(arrays[2])
        backend = open_runtime("openvino", str(model), threads=a.threads or None, hint="THROUGHPUT")
        print(f"[OVQ] {cpu_model()}, {os.cpu_count()} CPU(s); {model.name}, THROUGHPUT hint, "
              f"{backend.requests_in_flight} infer requests; {len(lengths)} sentences; best / median of {a.repeats}")
        for bs in a.batch_sizes:
            for name, (best, median) in compare(backend, arrays, lengths, bs, a.repeats).items():
                print(f"[OVQ] bs{bs:<3} {name:36s} {best:8.1f} / {median:8.1f} sentences/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
