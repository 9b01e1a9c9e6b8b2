"""The prepared GPU script's work (test/gpu_all.sh): every GPU target of issue 40 measured once, one [SUMMARY] line
each, and one record (command, device, versions, output) for docs/measurements/."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time

from tinybert.settings import GPU_FP32, SEQ_LEN

FP16, COMPILED_ROW, GRAPH_ROW = "gpu-fp16", "Ghc", "Gh"  # the model's fp16 path; the benchmark's rows compared
COMPARED_SIZES = (64, 1024)
EVAL_SIZES = (1, 4, 8, 16, 32, 64)
PARTS = ("model_on_corpus", "card_shape_fp16", "classify_vs_tokenizer", "eval_all", "compiled_vs_graphs")


class _Tee(io.TextIOBase):
    """stdout as it is, and kept for the record."""

    def __init__(self, stream):
        self.stream, self.kept = stream, io.StringIO()

    def write(self, text):
        self.kept.write(text)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


def slice_corpus(source: str, target: str, lines: int) -> str:
    """`source` itself (lines 0), or its header and first `lines` data lines written to `target`."""
    from tinybert.errors import DataFormatError, expect

    expect(os.path.isfile(source), DataFormatError, f"{source}: expected the corpus TSV (GPU_ALL_CORPUS), found no "
                                                    "such file")
    if not lines:
        return source
    with open(source, "rb") as handle, open(target, "wb") as out:
        for number, line in enumerate(handle):
            if number > lines:
                break
            out.write(line if line.endswith(b"\n") else line + b"\n")
    return target


def versions() -> dict:
    import platform
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in ("torch", "transformers", "tokenizers", "numpy", "onnxruntime", "onnxruntime-gpu", "ray"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    import torch

    found["cuda"] = torch.version.cuda
    return found


def run_gpu_all(*, corpus: str, data_file: str, ckpt_dir: str, out_dir: str, device: int, lines: int,
                eval_script: str | None, targets: dict, command: str, progress: bool = False,
                perf_seconds: float = 1.0, perf_repeats: int = 3, bench_repeats: int = 3, parts=PARTS,
                eval_sizes=EVAL_SIZES, compare_sizes=COMPARED_SIZES) -> dict:
    """Each of `parts` in turn, in PARTS' order (a failing one said, the rest still run); the record written to
    `out_dir`."""
    from tinybert.capabilities import gpu

    os.makedirs(out_dir, exist_ok=True)
    found = gpu(device)
    tee, real_stdout = _Tee(sys.stdout), sys.stdout
    sys.stdout = tee
    record = {"command": command, "device": found.name, "faked": found.faked, "versions": versions(),
              "settings": {"corpus": corpus, "lines": lines, "data_file": data_file, "ckpt_dir": ckpt_dir,
                           "device": device}, "targets": targets, "parts": {}, "summary": []}
    try:
        if found.faked:
            print(f"[INFO] {found.name}: every figure below is the CPU's, NOT a GPU figure")
        work = os.path.join(out_dir, "work")
        os.makedirs(work, exist_ok=True)
        used = slice_corpus(corpus, os.path.join(work, "corpus.tsv"), lines)
        common = dict(ckpt_dir=ckpt_dir, work=work, device=device, progress=progress)
        chosen = parts
        parts = [("model_on_corpus", lambda: _model_on_corpus(used, **common)),
                 ("card_shape_fp16", lambda: _card_shape(perf_seconds, perf_repeats, **common)),
                 ("classify_vs_tokenizer", lambda: _classify(used, **common)),
                 ("eval_all", lambda: _eval_all(eval_script, data_file, ckpt_dir, work, device, eval_sizes)),
                 ("compiled_vs_graphs", lambda: _compiled_vs_graphs(data_file, ckpt_dir, work, device,
                                                                   bench_repeats, compare_sizes))]
        for name, part in [(name, part) for name, part in parts if name in chosen]:
            tick = time.perf_counter()
            print(f"[INFO] ===== {name} =====")
            try:
                record["parts"][name] = {**part(), "seconds": time.perf_counter() - tick}
            except Exception as exc:  # said and recorded; the other parts still run
                record["parts"][name] = {"error": f"{type(exc).__name__}: {exc}",
                                         "seconds": time.perf_counter() - tick}
            line = summary_line(name, record["parts"][name], targets, found)
            record["summary"].append(line)
            print(line)
    finally:
        sys.stdout = real_stdout
    record["output"] = tee.kept.getvalue()
    write_record(out_dir, record)
    print(f"[INFO] gpu-all record: {os.path.join(out_dir, 'record.md')} (and record.json)")
    return record


def _plan(path: str, ckpt_dir: str, work: str, device: int):
    from tinybert.prepare import ModelRequest, prepare

    return prepare(ModelRequest(backend="gpu", gpu_model=path, model_dir=work, ckpt_dir=ckpt_dir, device=device),
                   quiet=True).plan


def _model_on_corpus(corpus: str, *, ckpt_dir: str, work: str, device: int, progress: bool) -> dict:
    from tinybert.checks.gpu_check import model_on_corpus

    runs = model_on_corpus(corpus, ckpt_dir=ckpt_dir, work_dir=work, paths=[GPU_FP32, FP16], device=device, repeats=3,
                           progress=progress)  # fp32 too: fp16's predictions are compared with it
    return {"rate": runs[FP16]["sentences_per_s"], "runs": runs}


def _card_shape(seconds: float, repeats: int, *, ckpt_dir: str, work: str, device: int, progress: bool) -> dict:
    from tinybert.registry import loop_default
    from tinybert.steps.perf import measure

    plan = _plan(FP16, ckpt_dir, work, device)
    figures = measure(plan.model, 1, loop_default("gpu"), runtime=plan.runtime, repeats=repeats,
                      min_seconds=seconds, progress=progress, **plan.options)
    return {"rate": figures["throughput"], "spread": figures["spread"]["throughput"], "shape": [1, SEQ_LEN]}


def _classify(corpus: str, *, ckpt_dir: str, work: str, device: int, progress: bool) -> dict:
    from tinybert.checks.classify_check import run_classify_check
    from tinybert.settings import CHUNK_SENTENCES, GPU_CLASSIFY_BATCH

    with open(corpus, "rb") as handle:
        sentences = max(1, sum(1 for _ in handle) - 1)  # the corpus once, not repeated
    said = io.StringIO()
    with contextlib.redirect_stdout(said):  # its own summary, as information: this script's lines are the targets'
        record = run_classify_check(source=corpus, sentences=sentences, work_dir=os.path.join(work, "classify"),
                                    ckpt_dir=ckpt_dir, model_dir=work, gpu_model=FP16, device=device,
                                    batch_size=GPU_CLASSIFY_BATCH, chunk_sentences=CHUNK_SENTENCES,
                                    tokenize_workers="auto", json_out=None, progress=progress)
    print(said.getvalue().replace("[SUMMARY]", "[INFO] classify-check:"), end="")
    return {"ratio": record["ratio"], "classify_rate": record["classify"]["sentences_per_s"],
            "tokenizer_rate": record["tokenizer_sentences_per_s"], "sentences": record["classify"]["sentences"],
            "labels_vs_fp32": record["labels_vs_fp32"]}


def _eval_all(script: str | None, data_file: str, ckpt_dir: str, work: str, device: int,
              sizes=EVAL_SIZES) -> dict:
    """eval_all.sh at the card's batch sizes, its folders under `work`; the wall time and its GPU column."""
    from tinybert.errors import UsageError, expect

    expect(bool(script) and os.path.isfile(script), UsageError, f"expected eval_all.sh, got {script!r}")
    root = os.path.join(work, "eval")
    env = {**os.environ, "DATA_FILE": data_file, "CKPT_DIR": ckpt_dir, "DEVICE": str(device),
           "EVAL_DIR": os.path.join(root, "table"), "BIN_DIR": os.path.join(root, "bert_bin"),
           "RESULT_DIR": os.path.join(root, "result"), "MODEL_DIR": os.path.join(root, "models")}
    os.makedirs(env["MODEL_DIR"], exist_ok=True)
    tick = time.perf_counter()
    done = subprocess.run(["bash", script, *map(str, sizes)], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - tick
    print(done.stdout[-4000:], end="")
    expect(done.returncode == 0, UsageError, f"eval_all.sh: expected exit status 0, got {done.returncode}: "
                                             f"{done.stderr.strip()[-1500:]}")
    gpu_perf = [os.path.join(env["EVAL_DIR"], f"bs{bs}_gpu_perf.json") for bs in sizes]
    return {"wall_s": wall, "gpu_column": all(map(os.path.isfile, gpu_perf)), "eval_dir": env["EVAL_DIR"],
            "batch_sizes": list(sizes)}


def _compiled_vs_graphs(data_file: str, ckpt_dir: str, work: str, device: int, repeats: int,
                        sizes=COMPARED_SIZES) -> dict:
    """The benchmark's compiled fp16 row against its fp16 CUDA-graph row, timed as the benchmark times rows (its
    RowTiming) on DATA_FILE at bs 64 and (the sentences repeated) 1024: each shape compiled, none eager."""
    import numpy as np

    from tinybert.bench.rows import row
    from tinybert.bench.timing import RowTiming
    from tinybert.data.features import load_features, preprocess
    from tinybert.model.modeling import vocab_path
    from tinybert.prepare import ModelRequest, prepare
    from tinybert.runtimes.torch_peer import graphs_compiled
    from tinybert.settings import CALL_TOKENS

    bin_dir = os.path.join(work, "bench_bin")
    preprocess(data_file, vocab_path(ckpt_dir), bin_dir, SEQ_LEN, progress=False)
    arrays = load_features(bin_dir)[0].batch(slice(None))
    figures: dict = {}
    for label in (GRAPH_ROW, COMPILED_ROW):
        path = row(label)
        runtime = prepare(ModelRequest(path=path, model_dir=work, ckpt_dir=ckpt_dir, device=device),
                          quiet=True).open()
        for bs in sizes:
            copies = max(1, -(-bs * 4 // len(arrays[0])))  # at least four full batches
            data = tuple(np.tile(a, (copies, 1)) for a in arrays)
            before, shapes_before = graphs_compiled(), len(runtime.shapes)
            timing = RowTiming(path, runtime, data, bs, CALL_TOKENS)
            for _ in range(repeats):
                timing.one_pass()
            result = timing.figures()
            new_shapes = len(runtime.shapes) - shapes_before
            figures.setdefault(label, {})[str(bs)] = {
                "sentences_per_s": result["sentences_per_s"], "shapes": new_shapes, "compile_s": result["compile_s"],
                "graphs_compiled": graphs_compiled() - before}
    for bs in map(str, sizes):
        compiled = figures[COMPILED_ROW][bs]
        compiled["eager_fallback"] = compiled["graphs_compiled"] < compiled["shapes"]
    return {"rows": figures}


def summary_line(name: str, part: dict, targets: dict, found) -> str:
    """One line per target, measured against it; a part that failed says so."""
    tag = " [faked GPU: CPU figures, not GPU figures]" if found.faked else ""
    if "error" in part:
        return f"[SUMMARY] {name}: FAILED ({part['error'][:300]}){tag}"
    if name == "model_on_corpus":
        run = part["runs"][FP16]
        return (f"[SUMMARY] model alone on the corpus, {FP16}: {run['sentences']} sentences at {part['rate']:,.0f}/s "
                f"(target >= {targets['corpus']:,} on an H200: {_met(part['rate'] >= targets['corpus'])}){tag}")
    if name == "card_shape_fp16":
        return (f"[SUMMARY] {FP16} at [1, {SEQ_LEN}]: {part['rate']:,.0f} sentences/s (target >= "
                f"{targets['card_shape']:,}: {_met(part['rate'] >= targets['card_shape'])}){tag}")
    if name == "classify_vs_tokenizer":
        return (f"[SUMMARY] classify of the corpus end to end ({part['sentences']} sentences, {FP16}) / the "
                f"tokenizing stage alone: {part['classify_rate']:,.0f}/s / {part['tokenizer_rate']:,.0f}/s = "
                f"{part['ratio']:.2f}x (target >= {targets['ratio']:.1f}x: {_met(part['ratio'] >= targets['ratio'])})"
                f"{tag}")
    if name == "eval_all":
        return (f"[SUMMARY] eval_all.sh {' '.join(map(str, part.get('batch_sizes', EVAL_SIZES)))}: "
                f"{part['wall_s']:.0f} s, GPU column "
                f"{'present' if part['gpu_column'] else 'MISSING'} (target <= {targets['eval_s']:.0f} s: "
                f"{_met(part['wall_s'] <= targets['eval_s'] and part['gpu_column'])}){tag}")
    rows = part["rows"]
    text = "; ".join(f"bs{bs} {COMPILED_ROW} {rows[COMPILED_ROW][str(bs)]['sentences_per_s']:,.0f}/s "
                     f"({rows[COMPILED_ROW][str(bs)]['shapes']} shapes, "
                     f"{'EAGER FALLBACK' if rows[COMPILED_ROW][str(bs)]['eager_fallback'] else 'no eager fallback'}) "
                     f"vs {GRAPH_ROW} {rows[GRAPH_ROW][str(bs)]['sentences_per_s']:,.0f}/s" for bs in rows[COMPILED_ROW])
    return f"[SUMMARY] benchmark rows, compiled vs CUDA graphs at fp16: {text}{tag}"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def write_record(out_dir: str, record: dict) -> None:
    """record.json, and record.md as docs/measurements/ keeps a measurement: command, device, versions, output."""
    from tinybert.fileio import write_json_atomic

    write_json_atomic(os.path.join(out_dir, "record.json"), record)
    faked = ("\n**The GPU was faked: every figure here is the CPU's, not a GPU figure.**\n" if record["faked"] else "")
    text = (f"# gpu_all.sh on {record['device']}\n{faked}\n## Command\n\n```\n{record['command']}\n```\n\n"
            f"## Device and versions\n\n```\n{json.dumps({'device': record['device'], **record['versions']}, indent=1)}"
            f"\n```\n\n## Summary\n\n```\n" + "\n".join(record["summary"]) +
            f"\n```\n\n## Output\n\n```\n{record['output']}```\n")
    with open(os.path.join(out_dir, "record.md"), "w", encoding="utf-8") as handle:
        handle.write(text)
