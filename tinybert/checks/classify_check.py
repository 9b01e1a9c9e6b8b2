"""The classify-check workflow (test/classify_gpu_check.sh): classify on a GPU measured end to end against the tokenizer
alone on a TSV repeated to a million sentences or more, and its labels against the fp32 path's; a JSON."""

from __future__ import annotations

import os
import shutil

from tinybert.settings import CHECK_TARGET, SEQ_LEN
from tinybert.settings import GPU_FP32 as FP32


def build_corpus(source: str, target: str, sentences: int) -> dict:
    """`source`'s header, then its data lines repeated until there are `sentences` of them or more."""
    from tinybert.errors import DataFormatError, expect
    from tinybert.fileio import atomic_path

    expect(os.path.isfile(source), DataFormatError, f"{source}: expected a TSV to repeat, found no such file")
    with open(source, "rb") as handle:
        header, body = handle.readline(), handle.read()
    if body and not body.endswith(b"\n"):
        body += b"\n"
    lines = body.count(b"\n")
    expect(lines > 0, DataFormatError, f"{source}: expected data lines after the header line, got none")
    copies = -(-sentences // lines)
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        out.write(header)
        for _ in range(copies):
            out.write(body)
    return {"source": os.path.abspath(source), "path": os.path.abspath(target), "source_lines": lines,
            "copies": copies, "lines": lines * copies}


def _classify(corpus: str, output: str, **options) -> dict:
    """One end-to-end classify run into `output` (any earlier one there removed first); its figures."""
    from tinybert.classify.pipeline import ClassifyOptions, classify_corpus
    from tinybert.classify.shards import work_dir_for

    shutil.rmtree(work_dir_for(output), ignore_errors=True)
    if os.path.exists(output):
        os.unlink(output)
    figures = classify_corpus(ClassifyOptions(input_path=corpus, output=output, format="tsv", backend="gpu",
                                              **options))
    wall = figures["wall_s"]
    return {"path": figures["ort_model"]["path"], "gpu_model": figures["ort_model"], "output": output,
            "sentences": figures["classified"], "wall_s": wall,
            "sentences_per_s": figures["classified"] / wall if wall > 0 else 0.0}


def compare_labels(output: str, reference: str) -> dict:
    """Row by row: the outputs' indices must match; how many labels differ."""
    from tinybert.errors import DataFormatError

    compared = differing = 0
    with open(output, encoding="utf-8") as ours, open(reference, encoding="utf-8") as theirs:
        for row, (a, b) in enumerate(zip(ours, theirs)):
            if row == 0:
                continue  # the header
            a_cells, b_cells = a.split("\t", 2), b.split("\t", 2)
            if a_cells[0] != b_cells[0]:
                raise DataFormatError(f"{output}: expected the rows of {reference}, got index {a_cells[0]!r} "
                                      f"against {b_cells[0]!r} on line {row + 1}")
            compared += 1
            differing += a_cells[1] != b_cells[1]
    return {"compared": compared, "differing": differing, "identical": differing == 0}


def run_classify_check(*, source: str, sentences: int, work_dir: str, ckpt_dir: str, model_dir: str, gpu_model: str,
                       device: int | None, batch_size: int, chunk_sentences: int, tokenize_workers: str,
                       json_out: str | None, progress: bool, target: float = CHECK_TARGET) -> dict:
    """The corpus built, the tokenizer timed alone on both routes, classify at `gpu_model` and at fp32; the record
    (written to `json_out`, default <work_dir>/classify_check.json) printed as a summary."""
    from tinybert.capabilities import gpu, logical_cpus
    from tinybert.classify.corpus import resolve_layout, scan_chunks
    from tinybert.classify.tokenizing import TokenizeJob, tokenize_alone, tokenize_processes
    from tinybert.fileio import write_json_atomic
    from tinybert.machine import describe_machine
    from tinybert.model.modeling import vocab_path

    device_name = gpu(device or 0).name  # no GPU: said here, before anything is built
    workers = tokenize_processes(tokenize_workers)
    os.makedirs(work_dir, exist_ok=True)
    corpus = build_corpus(source, os.path.join(work_dir, "corpus.tsv"), sentences)
    print(f"[INFO] {corpus['path']}: {corpus['lines']} lines ({source} repeated {corpus['copies']} time(s))")
    layout = resolve_layout(corpus["path"], "tsv")
    job = TokenizeJob(corpus["path"], layout, os.path.abspath(vocab_path(ckpt_dir)), SEQ_LEN)
    specs = scan_chunks(corpus["path"], layout, chunk_sentences).chunks
    processes = workers or logical_cpus()
    alone = {"threads": tokenize_alone(job, specs, None), "processes": tokenize_alone(job, specs, processes)}
    used = "threads" if workers is None else "processes"
    fastest = max(alone, key=lambda route: alone[route]["sentences_per_s"])
    common = dict(ckpt_dir=ckpt_dir, model_dir=model_dir, device=device, batch_size=batch_size,
                  chunk_sentences=chunk_sentences, tokenize_workers=str(tokenize_workers), progress=progress)
    run = _classify(corpus["path"], os.path.join(work_dir, "corpus.classified.tsv"), gpu_model=gpu_model, **common)
    fp32 = run
    if run["path"] != FP32:
        fp32 = _classify(corpus["path"], os.path.join(work_dir, f"corpus.{FP32}.classified.tsv"), gpu_model=FP32,
                         **common)
    tokenizer_rate = alone[fastest]["sentences_per_s"]
    ratio = run["sentences_per_s"] / tokenizer_rate if tokenizer_rate > 0 else 0.0
    record = {"device": device_name, "machine": describe_machine(), "corpus": corpus,
              "settings": {"gpu_model": gpu_model, "tokenize_workers": str(tokenize_workers), "batch_size": batch_size,
                           "chunk_sentences": chunk_sentences, "max_seq_length": SEQ_LEN},
              "tokenizer_alone": alone, "tokenizer_route_used": used, "tokenizer_route_fastest": fastest,
              "tokenizer_sentences_per_s": tokenizer_rate, "classify": run, "fp32": fp32,
              "ratio": ratio, "ratio_to_route_used": run["sentences_per_s"] / alone[used]["sentences_per_s"]
              if alone[used]["sentences_per_s"] > 0 else 0.0,
              "target": target, "meets_target": ratio >= target,
              "labels_vs_fp32": compare_labels(run["output"], fp32["output"])}
    json_out = json_out or os.path.join(work_dir, "classify_check.json")
    write_json_atomic(json_out, record)
    for line in summary(record):
        print(line)
    print(f"[INFO] classify-check record: {json_out}")
    return record


def summary(record: dict) -> list[str]:
    """The screen's summary: one line per figure the check gathered."""
    alone, run, labels = record["tokenizer_alone"], record["classify"], record["labels_vs_fp32"]
    routes = "; ".join(f"{_route(figures)} {figures['sentences_per_s']:,.0f}/s" for figures in alone.values())
    lines = [f"[SUMMARY] device: {record['device']}",
             f"[SUMMARY] corpus: {record['corpus']['lines']} lines ({record['corpus']['source']} repeated "
             f"{record['corpus']['copies']} time(s))",
             f"[SUMMARY] tokenizer alone (read, parse, tokenize; every core): {routes}",
             f"[SUMMARY] classify GPU_MODEL={record['settings']['gpu_model']} -> {run['path']}, TOKENIZE_WORKERS="
             f"{record['settings']['tokenize_workers']}: {run['sentences']} sentences at "
             f"{run['sentences_per_s']:,.0f}/s end to end ({run['wall_s']:.2f} s, TSV in to TSV out)",
             f"[SUMMARY] classify / tokenizer alone ({_route(alone[record['tokenizer_route_fastest']])}): "
             f"{record['ratio']:.2f} (target {record['target']:.2f}: {'met' if record['meets_target'] else 'NOT met'})"]
    if record["tokenizer_route_fastest"] != record["tokenizer_route_used"]:
        faster = alone[record["tokenizer_route_fastest"]]
        lines.append(f"[SUMMARY] the tokenizer alone was faster on {_route(faster)}: set TOKENIZE_WORKERS="
                     f"{faster['workers'] or 'auto'}")
    if run["path"] != FP32:
        lines.append(f"[SUMMARY] classify {FP32}: {record['fp32']['sentences_per_s']:,.0f}/s end to end")
    lines.append(f"[SUMMARY] labels against {FP32}'s: {labels['differing']} of {labels['compared']} differ "
                 f"({'identical' if labels['identical'] else 'NOT identical'})")
    return lines


def _route(figures: dict) -> str:
    return "the tokenizer's threads" if figures["workers"] is None else f"{figures['workers']} processes"
