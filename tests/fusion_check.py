"""The int8 path's fusion candidates side by side: each graph rewrite of the fast model, quantized as row D
is, checked against the fp32 logits and timed interleaved with D on the same length-bucketed calls.

    python tests/fusion_check.py --model_dir MODEL_DIR --bin_dir BIN_DIR [--batch_sizes "8 64"] [--rounds 7]

A candidate that wins on a machine belongs in the registry as a gated path; one that loses is recorded in
docs/measurements/ with this script's output. --profile prints D's time per ONNX Runtime op type.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinybert.capabilities import current  # noqa: E402
from tinybert.data.features import load_features  # noqa: E402
from tinybert.export.graphs import quantize_int8  # noqa: E402
from tinybert.runtimes import open_runtime  # noqa: E402
from tinybert.runtimes.runner import batch_inputs, plan, run_batches  # noqa: E402
from tinybert.settings import CALL_TOKENS, model_path  # noqa: E402


def ort_fused(source: str, target: str, attention: bool) -> None:
    """ONNX Runtime's transformer optimizer (SkipLayerNormalization, BiasGelu; with `attention`, Attention)."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_attention = attention
    optimize_model(source, model_type="bert", num_heads=12, hidden_size=312, optimization_options=options,
                   opt_level=0).save_model_to_file(target)


def qkv_merged(source: str, target: str) -> None:
    """The projections that read one tensor (query, key, value) as one MatMul + Add + Split: one quantization
    of the shared input and one wider GEMM instead of three."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper, version_converter

    model = onnx.load(source)
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    consumers = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    groups = collections.defaultdict(list)
    for node in graph.node:
        adds = consumers[node.output[0]] if node.op_type == "MatMul" and node.input[1] in weights else []
        if len(adds) == 1 and adds[0].op_type == "Add":
            bias = next(name for name in adds[0].input if name != node.output[0])
            if bias in weights:
                groups[node.input[0]].append((node, adds[0], numpy_helper.to_array(weights[node.input[1]]),
                                              numpy_helper.to_array(weights[bias])))
    replaced, dropped = {}, set()
    for k, (shared, members) in enumerate((g for g in groups.items() if len(g[1]) > 1), start=1):
        w = np.concatenate([m[2] for m in members], axis=1)
        b = np.concatenate([m[3] for m in members])
        sizes = np.array([m[2].shape[1] for m in members], dtype=np.int64)
        graph.initializer.extend([numpy_helper.from_array(w, f"qkv{k}_w"), numpy_helper.from_array(b, f"qkv{k}_b"),
                                  numpy_helper.from_array(sizes, f"qkv{k}_sizes")])
        replaced[id(members[0][0])] = [
            helper.make_node("MatMul", [shared, f"qkv{k}_w"], [f"qkv{k}_mm"], name=f"qkv{k}_mm"),
            helper.make_node("Add", [f"qkv{k}_mm", f"qkv{k}_b"], [f"qkv{k}_add"], name=f"qkv{k}_add"),
            helper.make_node("Split", [f"qkv{k}_add", f"qkv{k}_sizes"], [m[1].output[0] for m in members],
                             axis=-1, name=f"qkv{k}_split")]
        dropped |= {id(m[0]) for m in members} | {id(m[1]) for m in members}
    nodes = []
    for node in graph.node:
        nodes += replaced.get(id(node), [])
        if id(node) not in dropped:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if model.opset_import[0].version < 13:  # Split with sizes as an input
        model = version_converter.convert_version(model, 13)
    onnx.checker.check_model(model)
    onnx.save(model, target)


CANDIDATES = {
    "ort-fused": lambda s, t: ort_fused(s, t, attention=False),
    "ort-fused-attention": lambda s, t: ort_fused(s, t, attention=True),
    "qkv-merged": qkv_merged,
}


def logits(runtime, arrays, batches, fill_to):
    return run_batches(runtime.run, arrays, batches, fill_to, requests=runtime.requests)[0]


def profile(model: str, arrays, batches) -> dict:
    """Share of kernel time per op type, one thread, one pass over the calls."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling, options.intra_op_num_threads = True, 1
    with tempfile.TemporaryDirectory() as work:
        options.profile_file_prefix = os.path.join(work, "profile")
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        for batch in batches:
            session.run(None, dict(zip(names, batch_inputs(arrays, batch))))
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"]
    total = sum(by_op.values())
    return {op: t / total for op, t in by_op.most_common()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_dir", required=True, help="holds TinyBERT_fast.onnx and TinyBERT_int8.onnx (export-fast)")
    p.add_argument("--bin_dir", required=True, help="preprocessed features (dev.tsv)")
    p.add_argument("--batch_sizes", default="8 64")
    p.add_argument("--rounds", type=int, default=7, help="interleaved timed passes per model; the median is shown")
    p.add_argument("--profile", action="store_true", help="also D's time per op type at each batch size")
    a = p.parse_args()
    features, _ = load_features(a.bin_dir)
    arrays = features.batch(slice(None))
    fast, int8 = model_path("fast", a.model_dir), model_path("int8", a.model_dir)
    print(f"[INFO] CPU: {current().describe()}; {len(features)} sentences; calls of at most {CALL_TOKENS} positions")
    with tempfile.TemporaryDirectory(prefix="fusion-check-") as work:
        models = {"int8 (D)": int8}
        for name, rewrite in CANDIDATES.items():
            fp32 = os.path.join(work, f"{name}.onnx")
            rewrite(fast, fp32)
            models[name] = os.path.join(work, f"{name}_int8.onnx")
            quantize_int8(fp32, models[name])
        runtimes = {name: open_runtime("onnxruntime", path, requests="auto") for name, path in models.items()}
        reference = open_runtime("onnxruntime", fast, requests="auto")
        for bs in map(int, a.batch_sizes.split()):
            batches, fill_to = plan(arrays, bs, None, None, "tight", call_tokens=CALL_TOKENS)
            expected = logits(reference, arrays, batches, fill_to)
            times = {name: [] for name in runtimes}
            for _ in range(a.rounds):
                for name, runtime in runtimes.items():
                    start = time.perf_counter()
                    logits(runtime, arrays, batches, fill_to)
                    times[name].append(time.perf_counter() - start)
            base = statistics.median(times["int8 (D)"])
            for name, runtime in runtimes.items():
                got = logits(runtime, arrays, batches, fill_to)
                agree = float((got.argmax(1) == expected.argmax(1)).mean())
                rates = sorted(len(features) / t for t in times[name])
                median = len(features) / statistics.median(times[name])
                print(f"bs{bs} {name:20s} {median:8.0f} sentences/s (min {rates[0]:.0f}, max {rates[-1]:.0f}); "
                      f"x{base / statistics.median(times[name]):.2f} of D; max|logit - fp32| "
                      f"{float(abs(got - expected).max()):.4f}, agreement {100 * agree:.2f} %")
            if a.profile:
                shares = profile(int8, arrays, batches)
                print(f"bs{bs} D's kernel time by op type: " +
                      ", ".join(f"{op} {100 * s:.1f} %" for op, s in list(shares.items())[:12]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
