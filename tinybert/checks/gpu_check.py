"""The gpu-check workflow (test/gpu_check.sh): a GPU machine checked end to end with a PyTorch image's packages alone:
preprocess, GPU inference (fp32, fastest gated), accuracy, perf, classify; one summary and a JSON."""

from __future__ import annotations

import os

from tinybert.settings import CARD_LARGEST_BATCH, CORPUS_TARGET, GPU_CLASSIFY_BATCH, SEQ_LEN
from tinybert.settings import GPU_FP32 as FP32

INFER_BATCH = CARD_LARGEST_BATCH
CORPUS_BATCH = GPU_CLASSIFY_BATCH  # the model on a corpus in classify's GPU batches, keeping the GPU's SMs busy


def run_gpu_check(*, data_file: str, corpus: str | None, ckpt_dir: str, work_dir: str, batch_sizes: tuple,
                  seconds: float, repeats: int, device: int | None, json_out: str | None, progress: bool,
                  loop: int | None = None, corpus_target: int = CORPUS_TARGET) -> dict:
    """Every GPU step once, the figures gathered into one record (written to `json_out`, default
    <work_dir>/gpu_check.json) and printed."""
    from tinybert.capabilities import gpu
    from tinybert.data.features import preprocess
    from tinybert.fileio import write_json_atomic
    from tinybert.machine import describe_machine
    from tinybert.model.modeling import vocab_path
    from tinybert.prepare import ModelRequest, prepare

    device_name = gpu(device or 0).name
    os.makedirs(work_dir, exist_ok=True)
    bin_dir = os.path.join(work_dir, "bert_bin")
    preprocess(data_file, vocab_path(ckpt_dir), bin_dir, SEQ_LEN, progress=progress)
    fastest = prepare(ModelRequest(backend="gpu", gpu_model="auto", model_dir=work_dir, ckpt_dir=ckpt_dir,
                                   features_dir=bin_dir, device=device))
    record = {"device": device_name, "machine": describe_machine(), "gates": dict(fastest.gates),
              "fastest_gated": fastest.choice.record(), "paths": {}}
    for path in dict.fromkeys((FP32, fastest.plan.path)):
        ready = fastest if path == fastest.plan.path else \
            prepare(ModelRequest(backend="gpu", gpu_model=path, model_dir=work_dir, ckpt_dir=ckpt_dir, device=device))
        record["paths"][path] = _check_path(ready, ckpt_dir=ckpt_dir, work_dir=work_dir, bin_dir=bin_dir,
                                            batch_sizes=batch_sizes, seconds=seconds, loop=loop, repeats=repeats,
                                            progress=progress)
    record["fp32_vs_pytorch_cpu"] = _against_cpu(record["paths"][FP32]["result_dir"], bin_dir, ckpt_dir)
    if corpus:
        record["model_on_corpus"] = model_on_corpus(corpus, ckpt_dir=ckpt_dir, work_dir=work_dir,
                                                    paths=list(record["paths"]), device=device, repeats=repeats,
                                                    progress=progress)
        record["classify"] = _classify(corpus, ckpt_dir=ckpt_dir, work_dir=work_dir, paths=list(record["paths"]),
                                       device=device, progress=progress)
    json_out = json_out or os.path.join(work_dir, "gpu_check.json")
    write_json_atomic(json_out, record)
    for line in summary(record, corpus_target):
        print(line)
    print(f"[INFO] gpu-check record: {json_out}")
    return record


def _check_path(ready, *, ckpt_dir: str, work_dir: str, bin_dir: str, batch_sizes: tuple, seconds: float,
                loop: int | None, repeats: int, progress: bool) -> dict:
    """One GPU path: inference into a result folder, its accuracy, and perf at the card's shape per batch size."""
    from tinybert import INPUT_NAMES
    from tinybert.registry import loop_default
    from tinybert.steps.inference import run_inference
    from tinybert.steps.perf import measure
    from tinybert.steps.postprocess import score

    plan = ready.plan
    print(f"[INFO] ===== {plan.path}: {plan.describe()} =====")
    results = os.path.join(work_dir, "result")
    inference = run_inference(plan.model, [os.path.join(bin_dir, name) for name in INPUT_NAMES], results,
                              INFER_BATCH, runtime=plan.runtime, progress=progress, bucket_edges="tight",
                              call_tokens=0, ort_model=plan.choice.record(), **plan.options)
    accuracy = score(inference.result_dir, bin_dir)
    perf = {}
    for bs in batch_sizes:  # the card's shape [bs, SEQ_LEN], as trtexec times the static model
        figures = measure(plan.model, bs, loop or loop_default("gpu"), runtime=plan.runtime, repeats=repeats,
                          min_seconds=seconds, progress=progress, **plan.options)
        perf[str(bs)] = {"throughput": figures["throughput"], "spread": figures["spread"]["throughput"]}
    return {"result_dir": inference.result_dir, "accuracy": accuracy["accuracy"],
            "num_samples": accuracy["num_samples"], "perf": perf}


def _against_cpu(result_dir: str, bin_dir: str, ckpt_dir: str) -> dict:
    """The GPU fp32 logits against PyTorch eager on the CPU (the original's numerics), sample by sample."""
    import numpy as np

    from tinybert.data.features import load_features, read_manifest
    from tinybert.results.resultdir import read_logits
    from tinybert.runtimes import open_runtime
    from tinybert.runtimes.runner import model_logits
    from tinybert.settings import EXPORT_TOLERANCE
    from tinybert.steps.postprocess import sample_stems

    features, _ = load_features(bin_dir)
    reference = model_logits(open_runtime("pytorch", ckpt_dir), features.batch(slice(None)), INFER_BATCH)
    logits = read_logits(result_dir, sample_stems(read_manifest(bin_dir)))
    diff = float(np.abs(logits - reference).max())
    return {"max_abs_diff": diff, "tolerance": EXPORT_TOLERANCE, "within": diff <= EXPORT_TOLERANCE,
            "same_predictions": float((logits.argmax(1) == reference.argmax(1)).mean())}


def model_on_corpus(corpus: str, *, ckpt_dir: str, work_dir: str, paths: list[str], device: int | None,
                     repeats: int, progress: bool) -> dict:
    """The model alone on the corpus's features (tokenized first, on the host): length-sorted batches of
    CORPUS_BATCH, each shape captured before the clock, the copies to and from the GPU inside it."""
    import time

    import numpy as np

    from tinybert.data.features import load_features, preprocess
    from tinybert.model.modeling import vocab_path
    from tinybert.prepare import ModelRequest, prepare
    from tinybert.runtimes.runner import batch_shapes, plan, run_batches

    bin_dir = os.path.join(work_dir, "corpus_bin")
    preprocess(corpus, vocab_path(ckpt_dir), bin_dir, SEQ_LEN, progress=progress)
    features, _ = load_features(bin_dir)
    arrays = features.batch(slice(None))
    runs, predictions = {}, {}
    for path in paths:
        runtime = prepare(ModelRequest(backend="gpu", gpu_model=path, model_dir=work_dir, ckpt_dir=ckpt_dir,
                                       device=device), quiet=True).open()
        batches, fill_to = plan(arrays, CORPUS_BATCH, runtime.seq_len, runtime.batch_size, "tight")
        prepare_s = runtime.warm_up(batch_shapes(batches))
        walls = []
        for _ in range(repeats):
            tick = time.perf_counter()
            logits, _ = run_batches(runtime.run, arrays, batches, fill_to)
            walls.append(time.perf_counter() - tick)
        predictions[path] = logits.argmax(1)
        wall = sorted(walls)[len(walls) // 2]
        runs[path] = {"sentences": len(arrays[0]), "batch_size": CORPUS_BATCH, "shapes": len(batch_shapes(batches)),
                      "prepare_s": prepare_s, "wall_s": wall, "sentences_per_s": len(arrays[0]) / wall,
                      "passes_sentences_per_s": [len(arrays[0]) / w for w in walls]}
        if features.labels is not None:
            runs[path]["accuracy"] = 100.0 * float((predictions[path] == features.labels).mean())
    for path in paths:
        runs[path]["predictions_same_as_fp32"] = float(np.mean(predictions[path] == predictions[FP32]))
    return runs


def _classify(corpus: str, *, ckpt_dir: str, work_dir: str, paths: list[str], device: int | None,
              progress: bool) -> dict:
    """The corpus classified on the GPU by each path, and how far the faster one's labels agree with fp32's."""
    from tinybert.classify.pipeline import ClassifyOptions, classify_corpus

    runs, labels = {}, {}
    for path in paths:
        output = os.path.join(work_dir, f"corpus.{path}.classified.tsv")
        figures = classify_corpus(ClassifyOptions(input_path=corpus, output=output, overwrite=True,
                                                  ckpt_dir=ckpt_dir, model_dir=work_dir, backend="gpu",
                                                  gpu_model=path, device=device, progress=progress))
        labels[path] = _labels(output)
        runs[path] = {"output": output, "sentences": figures["sentences"], "wall_s": figures["wall_s"],
                      "sentences_per_s": figures["classified"] / figures["wall_s"] if figures["wall_s"] else 0.0,
                      "accuracy": 100.0 * figures["correct"] / figures["labelled"] if figures["labelled"] else None}
    for path in paths:
        same = sum(a == b for a, b in zip(labels[path], labels[FP32]))
        runs[path]["labels_same_as_fp32"] = same / max(1, len(labels[FP32]))
    return runs


def _labels(output: str) -> list[str]:
    with open(output, encoding="utf-8") as handle:
        next(handle)  # the header
        return [line.split("\t")[1] for line in handle]


def summary(record: dict, corpus_target: int = CORPUS_TARGET) -> list[str]:
    """The screen's summary: one line per figure the check gathered."""
    lines = [f"[SUMMARY] device: {record['device']}",
             f"[SUMMARY] fastest gated GPU path: {record['fastest_gated']['path']} "
             f"({record['fastest_gated']['reason'] or 'as named'})"]
    cpu = record["fp32_vs_pytorch_cpu"]
    lines.append(f"[SUMMARY] {FP32} vs PyTorch eager on the CPU: max |logit difference| {cpu['max_abs_diff']:.2e} "
                 f"({'within' if cpu['within'] else 'BEYOND'} {cpu['tolerance']:.0e}), "
                 f"{100 * cpu['same_predictions']:.2f}% the same predictions")
    for path, figures in record["paths"].items():
        rates = ", ".join(f"bs{bs} {f['throughput']:,.0f}" for bs, f in figures["perf"].items())
        lines.append(f"[SUMMARY] {path}: accuracy {figures['accuracy']:.2f}% of {figures['num_samples']}; "
                     f"sentences/s at [bs, {SEQ_LEN}]: {rates}")
    for path, run in (record.get("model_on_corpus") or {}).items():
        lines.append(f"[SUMMARY] model on the corpus, {path}: {run['sentences']} sentences at "
                     f"{run['sentences_per_s']:,.0f}/s (batches of {run['batch_size']} sorted by length, "
                     f"{run['shapes']} shapes prepared in {run['prepare_s']:.1f} s before the clock; the issue's target "
                     f"for fp16 on an H200: {corpus_target:,}), predictions {100 * run['predictions_same_as_fp32']:.2f}% "
                     f"the same as {FP32}'s")
    for path, run in (record.get("classify") or {}).items():
        accuracy = f", accuracy {run['accuracy']:.2f}%" if run["accuracy"] is not None else ""
        lines.append(f"[SUMMARY] classify {path}: {run['sentences']} sentences at {run['sentences_per_s']:,.0f}/s"
                     f"{accuracy}, labels {100 * run['labels_same_as_fp32']:.2f}% the same as {FP32}'s")
    return lines
