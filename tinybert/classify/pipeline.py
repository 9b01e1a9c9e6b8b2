"""`python -m tinybert classify` / test/classify.sh: classify a corpus of any size into one TSV, in chunks (memory
of two, three on a GPU), resumable after a kill, published atomically, byte for byte an uninterrupted run's output."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import replace

from tinybert.classify.corpus import BAD_EXAMPLES, ChunkPlan, resolve_layout, scan_chunks
from tinybert.data.dataset import file_sha256
from tinybert.errors import BackendUnavailableError, DataFormatError, UsageError, expect
from tinybert.progress import progress as progress_bar
from tinybert.settings import CLASSIFY_BATCH, ENGINES
from tinybert.classify.options import ClassifyOptions
from tinybert.classify.shards import COLUMNS, RECORD_FORMAT, SENTENCE, WorkFolder, refuse_existing


def default_output(input_path: str) -> str:
    return f"{os.path.splitext(os.path.basename(input_path))[0]}.classified.tsv"


def ensure_model(options: ClassifyOptions):
    """The ready model of the options (`prepare`: BACKEND=auto among the backends that run a path, ORT_MODEL's model
    exported when missing or stale, auto's gates checked) and the file naming it (the weights on a GPU path)."""
    from tinybert.model.modeling import weights_path
    from tinybert.prepare import Calibration, ModelRequest, prepare
    from tinybert.registry import CHECKPOINT, path_backends, run_path

    calibration = Calibration(options.calibration_file) if options.calibration_file else None
    request = ModelRequest(backend=options.backend, ort_model=options.ort_model, gpu_model=options.gpu_model,
                           model_dir=options.model_dir, ckpt_dir=options.ckpt_dir,
                           batch_size=options.batch_size or CLASSIFY_BATCH, features_dir=options.features_dir,
                           calibration=calibration, device=options.device, seq_len=options.seq_len)
    ready = _prepared_on_the_cluster(options, request) if _decided_on_the_cluster(options) else None
    ready = ready or prepare(request, among=path_backends())
    model = weights_path(ready.model) if run_path(ready.plan.path).model == CHECKPOINT else ready.model
    return ready, model


def _decided_on_the_cluster(options: ClassifyOptions) -> bool:
    """Ray with a driver that has no GPU (a head node) where the backend may be a GPU's: the GPU workers decide."""
    from tinybert.capabilities import gpus
    from tinybert.registry import AUTO, GPU_MODEL, backend as backend_entry

    maybe_gpu = options.backend == AUTO or backend_entry(options.backend).model == GPU_MODEL
    return options.engine == "ray" and maybe_gpu and not gpus()


def _prepared_on_the_cluster(options: ClassifyOptions, request):
    """The ready model as a cluster GPU decided it, its lines said here; None where the cluster has no GPU."""
    from tinybert.classify.ray_engine import prepared_on_a_cluster_gpu
    from tinybert.registry import AUTO, path_backends

    ready = prepared_on_a_cluster_gpu(options, request, path_backends())
    expect(ready is not None or options.backend == AUTO, BackendUnavailableError,
           f"BACKEND={options.backend} with ENGINE=ray: expected a GPU in the Ray cluster, found none (this machine "
           "has none either)")
    if ready is not None:
        print(f"[INFO] decided on a GPU of the Ray cluster, this machine having none: {ready.plan.describe()}")
        for line in ready.lines + ready.choice_lines():
            print(line)
    return ready


def run_identity(options: ClassifyOptions, layout, plan: ChunkPlan, model: str, vocab: str, path: str) -> dict:
    """What decides the output (`path`: the ORT_MODEL or GPU_MODEL path run); a resumed run must match it."""
    return {"format": RECORD_FORMAT,
            "input": {"path": os.path.abspath(plan.path), "bytes": plan.size, "lines": plan.lines,
                      "chunks": len(plan.chunks)},
            "layout": layout.describe(),
            "model": {"ort_model": path, "file": os.path.basename(model), "sha256": file_sha256(model)},
            "vocab_sha256": file_sha256(vocab),
            "settings": {"max_seq_length": options.seq_len, "batch_size": options.batch_size,
                         "bucket_edges": options.bucket_edges, "call_tokens": options.call_tokens,
                         "chunk_sentences": options.chunk_sentences,
                         "with_sentence": options.with_sentence}}


class Progress:
    """Sentences done (bad lines included) on a tqdm bar, shown on a terminal only."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.bar = progress_bar(None, enabled, total=total, initial=done, unit="sentence", unit_scale=True,
                                desc="classify", smoothing=0.1)

    def batch(self, batch, logits) -> None:
        self.bar.update(len(batch.indices))

    def close(self) -> None:
        self.bar.close()


def run_local(classifier, pending: list, progress: Progress, records: list, tokenizing=None, ahead: int = 1) -> None:
    """Run `pending` chunks in order, `ahead` more read and tokenized (by `tokenizing`, else one thread calling
    `classifier.prepare`) while the current one runs; a chunk is written only once its model call is done."""
    from tinybert.classify.tokenizing import ThreadTokenizing, in_order

    with contextlib.ExitStack() as stack:
        if tokenizing is None:
            tokenizing = stack.enter_context(ThreadTokenizing(classifier.prepare))
        chunks = stack.enter_context(contextlib.closing(in_order(tokenizing, pending, ahead)))
        for prepared in chunks:
            records.append(classifier.finish(prepared, progress.batch))
            progress.bar.update(records[-1]["bad"])


def resolve_batch(options: ClassifyOptions, backend: str) -> int:
    """The batch size given, else GPU_CLASSIFY_BATCH on the GPU backend and CLASSIFY_BATCH elsewhere."""
    if options.batch_size is not None:
        return options.batch_size
    from tinybert.registry import GPU_MODEL, backend as backend_entry

    return options.gpu_batch_size if backend_entry(backend).model == GPU_MODEL else CLASSIFY_BATCH


def _at_least_lines(path: str, count: int) -> bool:
    """Whether the file has `count` lines or more, read only as far as needed."""
    found = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            found += block.count(b"\n")
            if found >= count:
                return True
    return False


def _engine(options: ClassifyOptions, job, stack: contextlib.ExitStack):
    """A function running the pending chunks; the local model is opened here, before the clock starts, and on a GPU
    path the tokenizing route started (closed with `stack`) and a full batch's shapes captured."""
    from tinybert.classify.tokenizing import open_tokenizing, tokenize_processes
    from tinybert.registry import run_path

    expect(options.engine in ENGINES, UsageError, f"expected ENGINE {' or '.join(ENGINES)}, got {options.engine!r}")
    workers = tokenize_processes(options.tokenize_workers)
    if options.engine == "ray":
        from tinybert.classify.ray_engine import run_ray

        return lambda pending, progress, records: run_ray(job, pending, options, progress, records)
    from tinybert.classify.worker import ChunkClassifier

    classifier = ChunkClassifier(job, options.threads, options.requests)
    if not run_path(job.path).on_gpu:
        return lambda pending, progress, records: run_local(classifier, pending, progress, records)
    ahead = options.tokenize_ahead
    tokenizing = stack.enter_context(open_tokenizing(job.tokenize_job, workers, classifier.prepare, ahead))
    tokenizing.start()
    print(f"[INFO] tokenizing {ahead} chunk(s) ahead of the GPU: {tokenizing.describe()} "
          f"(TOKENIZE_WORKERS={options.tokenize_workers})")
    if _at_least_lines(options.input_path, job.batch_size + 1):  # a full batch may occur: its graphs, now
        shapes, seconds = classifier.warm_up(job.batch_size)
        if shapes:
            print(f"[INFO] {shapes} shape(s) of a {job.batch_size}-sentence batch captured in {seconds:.2f} s, "
                  "before the clock")
    return lambda pending, progress, records: run_local(classifier, pending, progress, records, tokenizing, ahead)


def totals(records: list[dict]) -> dict:
    """The whole output's counts, from every chunk's record, in chunk order."""
    records = sorted(records, key=lambda r: r["chunk"])
    total = {key: sum(r.get(key, 0) for r in records) for key in ("lines", "sentences", "bad", "non_finite",
                                                                   "labelled", "correct")}
    total["bad_examples"] = [example for r in records for example in r["bad_examples"]][:BAD_EXAMPLES]
    return total


def _bad_lines(total: dict) -> str:
    shown = "; ".join(f"line {line}: {reason}" for line, reason in total["bad_examples"])
    more = total["bad"] - len(total["bad_examples"])
    return shown + (f"; and {more} more" if more > 0 else "")


def report(path: str, output: str, total: dict, with_sentence: bool) -> None:
    columns = ", ".join(COLUMNS + ((SENTENCE,) if with_sentence else ()))
    print(f"[INFO] {output}: {total['sentences']} sentence(s) of {path} ({columns})")
    if total["bad"]:
        print(f"[WARN] {path}: {total['bad']} bad line(s) skipped, the other lines keep their index: "
              f"{_bad_lines(total)}", file=sys.stderr)
    if total["non_finite"]:
        print(f"[WARN] {total['non_finite']} sentence(s) got non-finite logits (NaN/inf) from the model: label '-', "
              "probabilities nan", file=sys.stderr)
    if total["labelled"]:
        print(f"[INFO] accuracy: {100.0 * total['correct'] / total['labelled']:.2f}% "
              f"({total['correct']}/{total['labelled']} labelled sentences)")


def _job(options: ClassifyOptions, layout, work_dir: str, path: str):
    from tinybert.classify.worker import ClassifyJob
    from tinybert.registry import run_path

    whole = run_path(path).whole_batches  # a GPU call is one graph replay per batch
    return ClassifyJob(input_path=os.path.abspath(options.input_path), layout=layout, work_dir=work_dir,
                       path=path, model_dir=os.path.abspath(options.model_dir),
                       vocab_file=_vocab(options), seq_len=options.seq_len, batch_size=options.batch_size,
                       bucket_edges=options.bucket_edges, with_sentence=options.with_sentence,
                       call_tokens=0 if whole else options.call_tokens, ckpt_dir=os.path.abspath(options.ckpt_dir),
                       device=None if options.engine == "ray" else options.device)


def _vocab(options: ClassifyOptions) -> str:
    return os.path.abspath(options.vocab_file or os.path.join(options.ckpt_dir, "vocab.txt"))


def _run(options: ClassifyOptions, work: WorkFolder, layout, plan: ChunkPlan, model: str, run_pending,
         path: str) -> dict:
    """Resume or start, run the pending chunks, publish; this run's counts."""
    earlier = work.begin(run_identity(options, layout, plan, model, _vocab(options), path), options.restart)
    pending, warnings = work.pending(plan)
    for warning in warnings:
        print(f"[WARN] {warning}", file=sys.stderr)
    if earlier:
        print(f"[INFO] continuing the unfinished run in {work.path}: {len(plan.chunks) - len(pending)} of "
              f"{len(plan.chunks)} chunk(s) already done")
    records = []
    progress = Progress(plan.lines, plan.lines - sum(spec.lines for spec in pending), options.progress)
    try:
        run_pending(pending, progress, records)
    finally:
        progress.close()
    total = totals(work.done_records())
    if total["sentences"] == 0:
        work.remove()
        raise DataFormatError(f"{options.input_path}: expected at least one usable line, got {total['bad']} bad "
                              f"line(s): {_bad_lines(total)}")
    work.publish(plan, options.with_sentence, options.overwrite)
    return {**total, "classified": sum(r["sentences"] for r in records)}


def classify_corpus(options: ClassifyOptions) -> dict:
    """The whole classify step; returns the output's counts and this run's figures."""
    output = options.output or default_output(options.input_path)
    layout = resolve_layout(options.input_path, options.format, options.column, options.label_column)
    work = WorkFolder(output)
    work.remove_leftovers()
    if os.path.isdir(work.path):
        with work:
            if work.published():  # killed after publishing, before removing the work folder
                total = totals(work.done_records())
                work.remove()
                report(options.input_path, output, total, options.with_sentence)
                return total
    refuse_existing(output, options.overwrite)
    vocab = _vocab(options)
    expect(os.path.isfile(vocab), DataFormatError,
           f"{vocab}: expected the WordPiece vocab.txt of the checkpoint (CKPT_DIR), found no such file")
    ready, model = ensure_model(options)
    choice = ready.choice
    options = replace(options, backend=ready.backend, batch_size=resolve_batch(options, ready.backend))
    with contextlib.ExitStack() as stack:
        run_pending = _engine(options, _job(options, layout, work.path, choice.path), stack)
        tick = time.perf_counter()  # the rate: scan, read, tokenize, infer, write, publish
        plan = scan_chunks(options.input_path, layout, options.chunk_sentences)
        with work:
            try:
                figures = _run(options, work, layout, plan, model=model, run_pending=run_pending, path=choice.path)
            except BaseException:
                if not work.done_records():  # nothing to resume: leave no folder behind
                    work.remove()
                raise
            work.remove()  # still holding the lock: no other run starts on a half-removed folder
        figures["wall_s"] = time.perf_counter() - tick
    figures["ort_model"] = choice.record()
    report(options.input_path, output, figures, options.with_sentence)
    rate = figures["classified"] / figures["wall_s"] if figures["wall_s"] > 0 else 0.0
    chosen = f"{choice.requested} -> {choice.path}" if choice.reason else choice.path
    print(f"[INFO] rate: {rate:.1f} sentences/s ({figures['classified']} sentences classified in "
          f"{figures['wall_s']:.2f} s; engine {options.engine}, {choice.setting}={chosen}, batch "
          f"{options.batch_size}, chunks of {options.chunk_sentences})")
    return figures
