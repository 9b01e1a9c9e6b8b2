"""`python -m tinybert gpu-check` (test/gpu_check.sh): a GPU machine checked end to end with a PyTorch image's packages
alone: preprocess, GPU inference (fp32, fastest gated), accuracy, perf, classify; one summary and a JSON."""

from __future__ import annotations

import os

from tinybert.cli.parsers import DEFAULTS, StepTable, batch_sizes, non_negative_int, positive_int
from tinybert.settings import PERF_REPEATS, SEQ_LEN

STEPS = StepTable()
step = STEPS.step
CHECK_BATCH_SIZES = "1 8 64 1024"  # the card's smallest, middle and largest, and one where the GPU is busy
INFER_BATCH = 64  # the card's largest batch size
CORPUS_BATCH = 4096  # the model on a corpus: length-sorted batches this large keep the GPU's SMs busy
CORPUS_TARGET = 650_000  # sentences/s fp16 on an H200 (issue 25): printed beside the measured figure
FP32 = "gpu-fp32"


@step("gpu-check", "check a GPU machine end to end (preprocess, GPU inference at fp32 and the fastest gated "
                   "precision, accuracy, perf, classify) with a PyTorch image's packages alone")
def _gpu_check(argv, prog):
    p = STEPS.parser("gpu-check", prog)
    p.add_argument("--data_file", default=DEFAULTS["DATA_FILE"], help="DATA_FILE: the labelled evaluation TSV")
    p.add_argument("--corpus", default=None, help="a corpus to classify, e.g. SST-2's train.tsv (none: skipped)")
    p.add_argument("--ckpt_dir", default=DEFAULTS["CKPT_DIR"], help="CKPT_DIR: the checkpoint")
    p.add_argument("--work_dir", default="./gpu_check", help="features, gate records, result folders and outputs")
    p.add_argument("--batch_sizes", type=batch_sizes, default=CHECK_BATCH_SIZES, help="perf's batch sizes")
    p.add_argument("--seconds", type=float, default=1.0, help="timed seconds per perf repeat at least")
    p.add_argument("--loop", type=positive_int, default=None, help="perf's calls per repeat at least (default: "
                                                                   "BACKEND=gpu's LOOP)")
    p.add_argument("--repeats", type=positive_int, default=PERF_REPEATS, help="perf repeats (median, min-max)")
    p.add_argument("--device", type=non_negative_int, default=None, help="DEVICE: the CUDA GPU")
    p.add_argument("--json_out", default=None, help="the summary as JSON (default: <work_dir>/gpu_check.json)")
    p.add_argument("--no_progress", action="store_true")
    a = p.parse_args(argv)
    run_gpu_check(data_file=a.data_file, corpus=a.corpus, ckpt_dir=a.ckpt_dir, work_dir=a.work_dir,
                  batch_sizes=tuple(a.batch_sizes), seconds=a.seconds, loop=a.loop, repeats=a.repeats, device=a.device,
                  json_out=a.json_out or os.path.join(a.work_dir, "gpu_check.json"), progress=not a.no_progress)


def run_gpu_check(*, data_file: str, corpus: str | None, ckpt_dir: str, work_dir: str, batch_sizes: tuple,
                  seconds: float, repeats: int, device: int | None, json_out: str, progress: bool,
                  loop: int | None = None) -> dict:
    """Every GPU step once, the figures gathered into one record (written to `json_out`) and printed."""
    from tinybert.capabilities import gpu
    from tinybert.data.features import preprocess
    from tinybert.export.gpu import ensure_gpu_gates
    from tinybert.fileio import write_json_atomic
    from tinybert.machine import describe_machine
    from tinybert.model.modeling import vocab_path
    from tinybert.runtimes.route import resolve_gpu_model

    device_name = gpu(device or 0).name
    os.makedirs(work_dir, exist_ok=True)
    bin_dir = os.path.join(work_dir, "bert_bin")
    preprocess(data_file, vocab_path(ckpt_dir), bin_dir, SEQ_LEN, progress=progress)
    gates = ensure_gpu_gates(ckpt_dir, work_dir, bin_dir, device=device)
    fastest = resolve_gpu_model("auto", work_dir, ckpt_dir, device)
    record = {"device": device_name, "machine": describe_machine(), "gates": gates,
              "fastest_gated": fastest.record(), "paths": {}}
    for path in dict.fromkeys((FP32, fastest.path)):
        record["paths"][path] = _check_path(path, ckpt_dir=ckpt_dir, work_dir=work_dir, bin_dir=bin_dir,
                                            batch_sizes=batch_sizes, seconds=seconds, loop=loop, repeats=repeats,
                                            device=device, progress=progress)
    record["fp32_vs_pytorch_cpu"] = _against_cpu(record["paths"][FP32]["result_dir"], bin_dir, ckpt_dir)
    if corpus:
        record["model_on_corpus"] = _model_on_corpus(corpus, ckpt_dir=ckpt_dir, work_dir=work_dir,
                                                     paths=list(record["paths"]), device=device, repeats=repeats,
                                                     progress=progress)
        record["classify"] = _classify(corpus, ckpt_dir=ckpt_dir, work_dir=work_dir, paths=list(record["paths"]),
                                       device=device, progress=progress)
    write_json_atomic(json_out, record)
    for line in summary(record):
        print(line)
    print(f"[INFO] gpu-check record: {json_out}")
    return record


def _check_path(path: str, *, ckpt_dir: str, work_dir: str, bin_dir: str, batch_sizes: tuple, seconds: float,
                loop: int | None, repeats: int, device: int | None, progress: bool) -> dict:
    """One GPU path: inference into a result folder, its accuracy, and perf at the card's shape per batch size."""
    from tinybert import INPUT_NAMES
    from tinybert.registry import loop_default
    from tinybert.runtimes.route import Request
    from tinybert.runtimes.route import plan_gpu
    from tinybert.steps.inference import run_inference
    from tinybert.steps.perf import measure
    from tinybert.steps.postprocess import score

    plan = plan_gpu(Request(model_dir=work_dir, ckpt_dir=ckpt_dir, gpu_model=path), device=device)
    print(f"[INFO] ===== {path}: {plan.describe()} =====")
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


def _model_on_corpus(corpus: str, *, ckpt_dir: str, work_dir: str, paths: list[str], device: int | None,
                     repeats: int, progress: bool) -> dict:
    """The model alone on the corpus's features (tokenized first, on the host): length-sorted batches of
    CORPUS_BATCH, each shape captured before the clock, the copies to and from the GPU inside it."""
    import time

    import numpy as np

    from tinybert.data.features import load_features, preprocess
    from tinybert.model.modeling import vocab_path
    from tinybert.runtimes.route import open_path
    from tinybert.runtimes.runner import batch_shapes, plan, run_batches

    bin_dir = os.path.join(work_dir, "corpus_bin")
    preprocess(corpus, vocab_path(ckpt_dir), bin_dir, SEQ_LEN, progress=progress)
    features, _ = load_features(bin_dir)
    arrays = features.batch(slice(None))
    runs, predictions = {}, {}
    for path in paths:
        runtime = open_path(path, work_dir, ckpt_dir=ckpt_dir, device=device)
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


def summary(record: dict) -> list[str]:
    """The screen's summary: one line per figure the check gathered."""
    lines = [f"[SUMMARY] device: {record['device']}",
             f"[SUMMARY] fastest gated GPU path: {record['fastest_gated']['path']} "
             f"({record['fastest_gated']['reason'] or 'as named'})"]
    cpu = record["fp32_vs_pytorch_cpu"]
    lines.append(f"[SUMMARY] gpu-fp32 vs PyTorch eager on the CPU: max |logit difference| {cpu['max_abs_diff']:.2e} "
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
                     f"for fp16 on an H200: {CORPUS_TARGET:,}), predictions {100 * run['predictions_same_as_fp32']:.2f}% "
                     "the same as gpu-fp32's")
    for path, run in (record.get("classify") or {}).items():
        accuracy = f", accuracy {run['accuracy']:.2f}%" if run["accuracy"] is not None else ""
        lines.append(f"[SUMMARY] classify {path}: {run['sentences']} sentences at {run['sentences_per_s']:,.0f}/s"
                     f"{accuracy}, labels {100 * run['labels_same_as_fp32']:.2f}% the same as gpu-fp32's")
    return lines
