"""PyTorch peer check (a script, not part of the pytest run): the `pytorch-peer` backend on the SST-2
dev set, length-bucketed, last layer at [CLS] only. Prints

- compilation: seconds and graphs compiled by the warm-up of each batch size, cold (empty Inductor
  cache) and warm (a second process on the same cache), and graphs compiled by a pass after it (0);
- numerics: max abs logit difference to eager fp32 (compiled fp32: target <= 1e-4) and agreement;
- speed: sentences/s of eager fp32, eager bf16, compiled fp32, compiled bf16 (best of --repeats).

Each configuration runs in its own process (compilation caches are per process). Minutes on 2
cores; on a machine without native bf16 the bf16 rows are emulated and slow.

    .venv/bin/python tests/torch_peers_check.py [--data_file dev.tsv] [--model_dir DIR] [--threads N]
        [--count_sizes 1 8 32 64] [--speed_sizes 8 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

DEFAULT_CHECKPOINT = REPO.parent / "shared" / "models" / "tinybert-sst2-demo"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "SST-2" / "dev.tsv"
CONFIGS = [("eager fp32", "fp32", False), ("eager bf16", "bf16", False),
           ("compiled fp32", "fp32", True), ("compiled bf16", "bf16", True)]


def child(a) -> dict:
    """One configuration in this process: warm-up and a pass per count size (graphs compiled by
    each), then timed passes per speed size; logits of the first speed size saved to --logits."""
    import numpy as np

    from tinybert.runtimes.torch_peer import TorchPeerRuntime, graphs_compiled
    from tinybert.data.features import load_features
    from tinybert.runtimes.runner import batch_shapes, plan_batches, real_lengths, run_batches

    features, _ = load_features(a.features)
    arrays = features.batch(slice(None))
    lengths = real_lengths(arrays[2])
    backend = TorchPeerRuntime(str(a.model_dir), threads=a.threads, precision=a.precision,
                               compile=a.compile, cls_only=True)
    report = {"warm_up": [], "speed": []}
    for bs in a.count_sizes:
        batches = plan_batches(lengths, bs)
        graphs, tick = graphs_compiled(), time.perf_counter()
        compile_s = backend.warm_up(batch_shapes(batches))
        warm_s, graphs_warm_up = time.perf_counter() - tick, graphs_compiled() - graphs
        if a.check_pass:
            run_batches(backend.run, arrays, batches)
        report["warm_up"].append({"bs": bs, "shapes": len(batch_shapes(batches)), "compile_s": compile_s,
                                  "warm_up_s": warm_s, "graphs": graphs_warm_up,
                                  "graphs_in_pass": graphs_compiled() - graphs - graphs_warm_up})
    for bs in a.speed_sizes:
        batches = plan_batches(lengths, bs)
        backend.warm_up(batch_shapes(batches))
        walls = []
        for _ in range(a.repeats):
            tick = time.perf_counter()
            logits, _ = run_batches(backend.run, arrays, batches)
            walls.append(time.perf_counter() - tick)
        report["speed"].append({"bs": bs, "sentences_per_s": len(lengths) / min(walls)})
        if bs == a.speed_sizes[0] and a.logits:
            np.save(a.logits, logits)
    report["compile_s_total"] = backend.compile_seconds
    return report


def run_child(a, features: str, precision: str, compiled: bool, cache: str, speed: bool, logits: str = "") -> dict:
    args = [sys.executable, __file__, "--child", "--features", features, "--model_dir", str(a.model_dir),
            "--precision", precision, "--threads", str(a.threads or 0), "--repeats", str(a.repeats),
            "--count_sizes", *map(str, a.count_sizes if compiled else []),
            "--speed_sizes", *map(str, a.speed_sizes if speed else []), "--logits", logits]
    args += ["--compile"] if compiled else []
    args += ["--check_pass"] if speed else []  # the warm-cache run measures compilation only
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"[ERROR] {precision} compile={compiled} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_compilation(name: str, cold: dict, warm: dict) -> None:
    for c, w in zip(cold["warm_up"], warm["warm_up"]):
        print(f"[TORCH] {name} bs{c['bs']:<3} {c['shapes']:3d} shapes: warm-up compiled {c['graphs']} graph(s) in "
              f"{c['compile_s']:6.1f} s cold / {w['compile_s']:6.1f} s warm cache ({w['graphs']} graph(s)); "
              f"graphs compiled by the pass after it: {c['graphs_in_pass']}")
    print(f"[TORCH] {name}: compilation in all, cold {cold['compile_s_total']:.1f} s, "
          f"warm cache {warm['compile_s_total']:.1f} s")


def print_numerics(logits: dict) -> None:
    import numpy as np

    reference = np.load(logits["eager fp32"])
    for name, path in logits.items():
        if name == "eager fp32":
            continue
        out = np.load(path)
        agree = float((out.argmax(1) == reference.argmax(1)).mean())
        print(f"[TORCH] {name} vs eager fp32: max abs logit difference {np.abs(out - reference).max():.2e}, "
              f"same prediction for {100 * agree:.2f}%")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_file", type=Path, default=DEFAULT_DATA)
    p.add_argument("--model_dir", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: physical cores)")
    p.add_argument("--count_sizes", type=int, nargs="*", default=[8, 32, 64, 1])
    p.add_argument("--speed_sizes", type=int, nargs="*", default=[8, 32])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--features", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--logits", default="", help=argparse.SUPPRESS)
    p.add_argument("--check_pass", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    a.threads = a.threads or None
    if a.child:
        print(json.dumps(child(a)))
        return 0
    from tinybert.data.features import preprocess
    from tinybert.machine import cpu_model, native_bf16

    print(f"[TORCH] {cpu_model()}, {os.cpu_count()} CPU(s), native bf16: {native_bf16()}")
    with tempfile.TemporaryDirectory(prefix="tinybert-torch-peers-") as tmp:
        features = os.path.join(tmp, "bert_bin")
        preprocess(str(a.data_file), str(a.model_dir / "vocab.txt"), features, 64, progress=False)
        logits = {}
        for name, precision, compiled in CONFIGS:
            cache = os.path.join(tmp, f"inductor-{precision}")
            logits[name] = os.path.join(tmp, f"{name.replace(' ', '_')}.npy")
            report = run_child(a, features, precision, compiled, cache, True, logits[name])
            if compiled:
                print_compilation(name, report, run_child(a, features, precision, True, cache, False))
            for s in report["speed"]:
                print(f"[TORCH] {name} bs{s['bs']}: {s['sentences_per_s']:.1f} sentences/s", flush=True)
        print_numerics(logits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
