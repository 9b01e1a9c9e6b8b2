"""classify on a faked GPU (capabilities.faked / TINYBERT_FAKE_GPU): chunks tokenized ahead of the model (the
tokenizer's threads or a process pool, the same features), a bounded look-ahead, the GPU batch, resuming after an
interruption or a SIGKILL, the Ray pipeline of CPU tasks and GPU actors, and the classify-check command."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, WORDS, assert_clean_error, run_cli, run_script
from test_classify import SENTENCES, FakeBackend, body, expected_rows

from tinybert.capabilities import FAKE_GPU_ENV, faked
from tinybert.classify import ray_engine, tokenizing, worker
from tinybert.classify.corpus import ChunkSpec, ParsedChunk, resolve_layout, scan_chunks
from tinybert.classify.pipeline import ClassifyOptions, classify_corpus, resolve_batch
from tinybert.classify.shards import work_dir_for
from tinybert.classify.tokenizing import (ProcessTokenizing, TokenizeJob, prepare_chunk, split_lines,
                                        tokenize_processes)
from tinybert.classify.worker import ChunkClassifier, shard_text
from tinybert.errors import UsageError
from tinybert.runtimes import route
from tinybert.settings import CLASSIFY_BATCH, GPU_CLASSIFY_BATCH, TOKENIZE_AHEAD

H200 = "NVIDIA H200"


# ---------------------------------------------------------------- the output rows, formatted faster

def _reference_shard_text(parsed: ParsedChunk, logits: np.ndarray, with_sentence: bool) -> str:
    """The rows as one f-string each (the formatting shard_text must reproduce byte for byte)."""
    finite = np.isfinite(logits).all(axis=1)
    probabilities = worker.softmax(np.where(finite[:, None], logits, 0.0))
    rows = []
    for i, (p, label, ok) in enumerate(zip(probabilities.tolist(), probabilities.argmax(1).tolist(), finite)):
        cells = f"{label}\t{p[0]:.4f}\t{p[1]:.4f}" if ok else "-\tnan\tnan"
        sentence = "\t" + parsed.sentences[i].replace("\t", " ") if with_sentence else ""
        rows.append(f"{parsed.indices[i]}\t{cells}{sentence}\n")
    return "".join(rows)


def test_rows_are_formatted_as_python_formats_them():
    ties = [0.03125, 0.09375, 0.00005, 0.99995, 0.5, 1.0, 0.0, 1e-300, 0.12345, 0.4444499999999]
    ties += [np.nextafter(0.03125, 1.0), np.nextafter(0.03125, 0.0)]
    assert worker.four_decimals(np.array(ties)).tolist() == [f"{v:.4f}" for v in ties]
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(3000, 2)) * rng.choice([0.01, 1.0, 20.0], size=(3000, 1))).astype(np.float32)
    logits[[5, 77]] = [np.nan, 1.0], [np.inf, -np.inf]
    parsed = ParsedChunk(sentences=[f"s{i}\tx" for i in range(3000)], labels=[i % 2 for i in range(3000)],
                         indices=[str(10 + i) for i in range(3000)])
    for with_sentence in (False, True):
        text, counts = shard_text(parsed, logits, with_sentence)
        assert text == _reference_shard_text(parsed, logits, with_sentence)
    assert counts["non_finite"] == 2 and counts["sentences"] == 3000
    assert shard_text(ParsedChunk(), np.empty((0, 2), np.float32), False)[0] == ""


# ---------------------------------------------------------------- the routes: the same features

def _awkward_corpus(path: Path) -> Path:
    """A BOM, CRLF lines, bad lines (the last chunk of 7 all bad), CJK, a sentence past 64 tokens, no final newline."""
    rows = [f"{s}\t{i % 2}" for i, s in enumerate(SENTENCES * 3)]
    rows[3], rows[10], rows[11] = "", "too\tmany\tfields", "\t1"
    rows[21:] = ["x\ty\tz"] * 6
    rows[14] = " ".join(["the very good movie"] * 30) + "\t1"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(["sentence\tlabel"] + rows).encode("utf-8"))
    return path


def test_tokenize_workers_values():
    assert tokenize_processes("auto") is None and tokenize_processes("") is None and tokenize_processes(" 3 ") == 3
    assert tokenize_processes(2) == 2
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(UsageError, match=f"expected TOKENIZE_WORKERS auto or a positive number of processes, "
                                             f"got '{bad}'"):
            tokenize_processes(bad)


def test_chunks_split_into_runs_of_whole_lines(tmp_path):
    source = _awkward_corpus(tmp_path / "in.tsv")
    layout = resolve_layout(str(source))
    raw = source.read_bytes()
    for spec in scan_chunks(str(source), layout, 7).chunks:
        for parts in (1, 2, 3, 7, 50):
            pieces = split_lines(raw[spec.start:spec.end], spec, parts)
            assert len(pieces) <= min(parts, spec.lines) and all(p.lines > 0 for p in pieces)
            assert sum(p.lines for p in pieces) == spec.lines and len(pieces) == min(parts, spec.lines) or parts == 50
            assert pieces[0].start == spec.start and pieces[-1].end == spec.end
            assert all(a.end == b.start for a, b in zip(pieces, pieces[1:]))
            assert [raw[p.start:p.end].count(b"\n") for p in pieces[:-1]] == [p.lines for p in pieces[:-1]]
            assert [p.first_line for p in pieces] == [spec.first_line + sum(q.lines for q in pieces[:i])
                                                      for i in range(len(pieces))]


def test_a_process_pool_gives_the_in_process_features_byte_for_byte(small_inputs, tmp_path):
    source = _awkward_corpus(tmp_path / "in.tsv")
    layout = resolve_layout(str(source))
    job = TokenizeJob(str(source), layout, str(small_inputs.checkpoint / "vocab.txt"), 64)
    specs = scan_chunks(str(source), layout, 7).chunks
    tokenizer = tokenizing.load_wordpiece_tokenizer(job.vocab_file)
    with ProcessTokenizing(job, 3) as pool:
        pool.start()
        assert len(multiprocessing.active_children()) == 3
        pooled = [pool.submit(spec).result() for spec in specs]
    assert not multiprocessing.active_children()  # closed: no process left behind
    for spec, got in zip(specs, pooled):
        here = prepare_chunk(job, spec, tokenizer)
        assert got.spec == spec and got.parsed == here.parsed
        if here.features is None:
            assert got.features is None
            continue
        for name, array in here.features.arrays().items():
            other = getattr(got.features, name)
            assert other.dtype == array.dtype == np.int64 and other.tobytes() == array.tobytes(), name
    assert sum(p.parsed.bad for p in pooled) == 9 and [p.features is None for p in pooled] == [False] * 3 + [True]
    assert max(int(p.features.lengths.max()) for p in pooled[:3]) == 64  # the long sentence, truncated


def test_the_gpu_batch_is_the_default_on_a_gpu():
    options = ClassifyOptions("in.tsv")
    assert resolve_batch(options, "gpu") == GPU_CLASSIFY_BATCH and resolve_batch(options, "onnxruntime") == \
        CLASSIFY_BATCH
    given = ClassifyOptions("in.tsv", batch_size=8, gpu_batch_size=512)
    assert resolve_batch(given, "gpu") == 8 and resolve_batch(ClassifyOptions("x", gpu_batch_size=512), "gpu") == 512


# ---------------------------------------------------------------- the local engine on a faked GPU

class SlowBackend(FakeBackend):
    """FakeBackend's logits, each call taking a while: the GPU busy on a chunk."""

    def __init__(self, events, seconds):
        self.events, self.seconds = events, seconds

    def run(self, *arrays):
        time.sleep(self.seconds)
        return super().run(*arrays)


@pytest.fixture
def corpus(tmp_path):
    source = tmp_path / "in.tsv"
    source.write_text("sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES * 3)), "utf-8")
    return source


def gpu_options(source, output, ckpt, **more) -> ClassifyOptions:
    return ClassifyOptions(str(source), str(output), ckpt_dir=str(ckpt), model_dir=str(Path(output).parent),
                           backend="gpu", gpu_model="gpu-fp32", progress=False,
                           chunk_sentences=more.pop("chunk_sentences", 4), batch_size=more.pop("batch_size", 4),
                           **more)


def _record(monkeypatch, events: list):
    """Each chunk's prepare (start, end) and finish (start, end), from whichever route prepares it."""
    lock = threading.Lock()

    def wrapped(kind, function, number):
        def call(self, item, *args, **kwargs):
            with lock:
                events.append((f"{kind}-start", number(item)))
            try:
                return function(self, item, *args, **kwargs)
            finally:
                with lock:
                    events.append((f"{kind}-end", number(item)))
        return call
    monkeypatch.setattr(ChunkClassifier, "prepare", wrapped("prepare", ChunkClassifier.prepare, lambda s: s.number))
    monkeypatch.setattr(ProcessTokenizing, "_prepare_chunk",
                        wrapped("prepare", ProcessTokenizing._prepare_chunk, lambda s: s.number))
    monkeypatch.setattr(ChunkClassifier, "finish", wrapped("finish", ChunkClassifier.finish, lambda p: p.spec.number))


@pytest.mark.parametrize("workers", ["auto", "2"])
@pytest.mark.slow
def test_tokenizing_runs_ahead_of_the_gpu_and_no_further(workers, small_inputs, corpus, tmp_path, monkeypatch, capsys):
    events = []
    monkeypatch.setattr(route, "open_path", lambda *a, **k: SlowBackend(events, 0.15))
    _record(monkeypatch, events)
    out = tmp_path / "out.tsv"
    with faked(gpu=H200):
        classify_corpus(gpu_options(corpus, out, small_inputs.checkpoint, tokenize_workers=workers))
    chunks = -(-len(SENTENCES) * 3 // 4)
    position = {event: i for i, event in enumerate(events)}
    assert len(position) == len(events) == 4 * chunks
    for k in range(chunks - 1):  # chunk k+1 is tokenized while chunk k is on the GPU
        assert position[("prepare-start", k + 1)] < position[("finish-end", k)], events
    in_memory, most = 0, 0
    for kind, _ in events:
        in_memory += {"prepare-start": 1, "finish-end": -1}.get(kind, 0)
        most = max(most, in_memory)
    assert most == TOKENIZE_AHEAD + 1, events  # the chunk on the GPU and TOKENIZE_AHEAD more, never all of them
    assert body(out) == expected_rows(small_inputs.checkpoint / "vocab.txt", list(enumerate(SENTENCES * 3)))
    route_said = "2 process(es)" if workers == "2" else "the tokenizer's own threads"
    assert f"[INFO] tokenizing {TOKENIZE_AHEAD} chunk(s) ahead of the GPU: {route_said}" in capsys.readouterr().out
    assert not multiprocessing.active_children()


def test_an_interrupted_gpu_run_redoes_the_chunks_in_flight_and_writes_each_once(small_inputs, corpus, tmp_path,
                                                                                  monkeypatch, capsys):
    monkeypatch.setattr(route, "open_path", lambda *a, **k: FakeBackend())
    written = []
    write_shard = worker.write_shard
    monkeypatch.setattr(worker, "write_shard", lambda d, spec, *a: written.append(spec.number) or
                        write_shard(d, spec, *a))
    reference, out = tmp_path / "reference.tsv", tmp_path / "out.tsv"
    with faked(gpu=H200):
        classify_corpus(gpu_options(corpus, reference, small_inputs.checkpoint))
        written.clear()
        finish, prepare, prepared = ChunkClassifier.finish, ProcessTokenizing._prepare_chunk, []
        monkeypatch.setattr(ProcessTokenizing, "_prepare_chunk", lambda self, spec: prepared.append(spec.number) or
                            prepare(self, spec))

        def stopping(self, chunk, on_batch=None):
            if chunk.spec.number == 2:
                time.sleep(0.3)  # the chunks ahead are tokenized by now
                raise KeyboardInterrupt
            return finish(self, chunk, on_batch)
        monkeypatch.setattr(ChunkClassifier, "finish", stopping)
        with pytest.raises(KeyboardInterrupt):
            classify_corpus(gpu_options(corpus, out, small_inputs.checkpoint, tokenize_workers="2"))
        assert not multiprocessing.active_children() and not out.exists()
        assert written == [0, 1] and set(prepared) >= {2, 3, 4}  # 2 was on the GPU, 3 and 4 tokenized ahead
        monkeypatch.setattr(ChunkClassifier, "finish", finish)
        capsys.readouterr()
        figures = classify_corpus(gpu_options(corpus, out, small_inputs.checkpoint, tokenize_workers="2"))
    assert out.read_bytes() == reference.read_bytes()
    chunks = -(-len(SENTENCES) * 3 // 4)
    assert sorted(written) == list(range(chunks)) and len(written) == chunks  # every chunk once, none twice
    assert figures["classified"] == len(SENTENCES) * 3 - 8
    assert f"2 of {chunks} chunk(s) already done" in capsys.readouterr().out
    assert not os.path.exists(work_dir_for(str(out)))


@pytest.mark.slow
def test_gpu_labels_equal_the_cpu_paths_with_a_process_pool(small_inputs, tmp_path, monkeypatch, capsys):
    """The real (generated) checkpoint: gpu-fp32 with the pool and a full batch's graphs captured first, against
    ORT_MODEL=fast on the CPU."""
    monkeypatch.chdir(tmp_path)
    common = dict(input_path=str(small_inputs.tsv), ckpt_dir=str(small_inputs.checkpoint), model_dir=str(tmp_path),
                  chunk_sentences=16, progress=False)
    classify_corpus(ClassifyOptions(output="cpu.tsv", ort_model="fast", backend="onnxruntime", **common))
    with faked(gpu=H200):
        figures = classify_corpus(ClassifyOptions(output="gpu.tsv", gpu_model="gpu-fp32", backend="gpu",
                                                  batch_size=8, tokenize_workers="2", **common))
    assert "8 shape(s) of a 8-sentence batch captured in" in capsys.readouterr().out
    cpu_rows = [line.split("\t") for line in Path("cpu.tsv").read_text().splitlines()]
    gpu_rows = [line.split("\t") for line in Path("gpu.tsv").read_text().splitlines()]
    assert figures["sentences"] == small_inputs.count and len(gpu_rows) == small_inputs.count + 1
    assert [r[:2] for r in gpu_rows] == [r[:2] for r in cpu_rows]
    assert max(abs(float(a[2]) - float(b[2])) for a, b in zip(gpu_rows[1:], cpu_rows[1:])) <= 1e-4


# ---------------------------------------------------------------- Ray: CPU tasks tokenize, GPU actors run the model

class FakeDataset:
    def __init__(self, stages):
        self.stages = stages

    def map_batches(self, fn, **kwargs):
        self.stages.append((fn, kwargs))
        return self


def test_ray_tokenizes_on_cpu_tasks_before_the_gpu_actors(small_inputs, tmp_path):
    from types import SimpleNamespace

    stages = []
    ray = SimpleNamespace(cluster_resources=lambda: {"CPU": 16.0, "GPU": 2.0}, data=SimpleNamespace(
        from_items=lambda items, override_num_blocks: FakeDataset(stages), ActorPoolStrategy=lambda size: size))
    options = SimpleNamespace(actor_cpus=1, actors=None, requests=None)
    job, pending = SimpleNamespace(path="gpu-fp16", batch_size=8), [ChunkSpec(i, 2 + i, 1, i, i + 1, "") for i in range(5)]
    ray_engine._pipeline(ray, job, pending, options, restarts=True)
    (tokenizing, tokenize_args), (actor, actor_args) = stages
    assert tokenizing is ray_engine.tokenize_chunks and tokenize_args["num_cpus"] == 1
    assert "num_gpus" not in tokenize_args and "compute" not in tokenize_args  # tasks, no GPU
    assert actor is ray_engine.GpuChunkActor and actor_args["num_gpus"] == 1 and actor_args["compute"] == 2
    assert actor_args["fn_constructor_kwargs"]["warm_up"] is False  # chunks of one line: no full batch to capture
    stages.clear()
    ray_engine._pipeline(ray, SimpleNamespace(path="gpu-fp16", batch_size=1), pending, options, restarts=True)
    assert stages[1][1]["fn_constructor_kwargs"]["warm_up"] is True
    stages.clear()
    ray_engine._pipeline(ray, SimpleNamespace(path="fast"), pending, options, restarts=True)
    assert [fn for fn, _ in stages] == [ray_engine.ChunkActor]  # the CPU path: one stage, as before


def test_ray_stages_write_the_local_engines_shard(small_inputs, tmp_path, monkeypatch):
    """tokenize_chunks and GpuChunkActor called as Ray Data calls them, without Ray: the local engine's bytes."""
    from dataclasses import asdict

    from tinybert.classify.worker import ClassifyJob

    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    layout = resolve_layout(str(small_inputs.tsv))
    [spec, *_] = scan_chunks(str(small_inputs.tsv), layout, 20).chunks
    jobs = {}
    for name in ("local", "ray"):
        (tmp_path / name).mkdir()
        jobs[name] = ClassifyJob(str(small_inputs.tsv), layout, str(tmp_path / name), "gpu-fp32", str(tmp_path),
                                 str(small_inputs.checkpoint / "vocab.txt"), 64, 8, "tight", call_tokens=0,
                                 ckpt_dir=str(small_inputs.checkpoint))
    batch = {name: np.array([value]) for name, value in asdict(spec).items()}
    with faked(gpu=H200):
        ChunkClassifier(jobs["local"]).run_chunk(spec)
        prepared = ray_engine.tokenize_chunks(batch, jobs["ray"])
        [record] = ray_engine.GpuChunkActor(jobs["ray"])(prepared)["record"]
    assert os.environ.pop("TOKENIZERS_PARALLELISM") == "false"  # the task's tokenizer on its one CPU
    assert json.loads(record)["sentences"] == 20
    for name in ("chunk-000000.tsv", "chunk-000000.json"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def _fake_ray(monkeypatch, gpu_ids, cluster_gpus=1, worker_gpus=None):
    """A stand-in Ray: a remote function runs here, seeing `worker_gpus` (faked names) where given."""
    import contextlib
    from types import SimpleNamespace

    calls = []

    def on_the_worker(function, *a, **k):
        with faked(gpu=worker_gpus) if worker_gpus else contextlib.nullcontext():
            return function(*a, **k)

    def remote(**resources):
        def wrap(function):
            return SimpleNamespace(remote=lambda *a, **k: calls.append(resources) or on_the_worker(function, *a, **k))
        return wrap
    fake = SimpleNamespace(is_initialized=lambda: True, get_gpu_ids=lambda: gpu_ids, remote=remote,
                           get=lambda value: value, shutdown=lambda: calls.append("shutdown"),
                           cluster_resources=lambda: {"CPU": 4, **({"GPU": cluster_gpus} if cluster_gpus else {})})
    monkeypatch.setitem(sys.modules, "ray", fake)
    return calls


def test_a_gpu_actor_runs_on_the_gpu_ray_gave_it_warmed_before_its_first_chunk(small_inputs, tmp_path, monkeypatch):
    """The driver's DEVICE (job.device) is not the actor's: with two faked GPUs, an actor given GPU 1 runs there,
    its full batch's shapes captured in its constructor."""
    from tinybert.classify.worker import ClassifyJob

    _fake_ray(monkeypatch, [1])
    layout = resolve_layout(str(small_inputs.tsv))
    job = ClassifyJob(str(small_inputs.tsv), layout, str(tmp_path), "gpu-fp32", str(tmp_path),
                      str(small_inputs.checkpoint / "vocab.txt"), 64, 8, "tight", call_tokens=0,
                      ckpt_dir=str(small_inputs.checkpoint), device=5)  # a driver's DEVICE the actor does not have
    with faked(gpu="NVIDIA H200,NVIDIA H200"):
        actor = ray_engine.GpuChunkActor(job, warm_up=True)
    runtime = actor.classifier.runtime
    assert runtime.device.gpu.index == 1 and actor.classifier.job.device == 1
    assert actor.warm_up[0] == 8 and [rows for rows, _ in runtime.shapes] == [8] * 8


def test_a_decision_on_a_gpu_runs_on_a_cluster_gpu(monkeypatch):
    """What a driver without a GPU (a Ray head) asks a GPU worker: the function runs there, one GPU reserved."""
    from types import SimpleNamespace

    calls = _fake_ray(monkeypatch, [0])
    monkeypatch.setattr(ray_engine, "_connect", lambda ray, cpus, gpus=None: calls.append(("connect", cpus)) or True)
    assert ray_engine.on_a_cluster_gpu(SimpleNamespace(ray_cpus=3), divmod, 7, 2) == (3, 1)
    assert calls == [("connect", 3), {"num_gpus": 1, "max_retries": 0}, "shutdown"]


def _headless(monkeypatch):
    """This process as a Ray head node without a GPU, on any machine."""
    monkeypatch.delenv(FAKE_GPU_ENV, raising=False)
    monkeypatch.setattr(sys.modules["tinybert.capabilities.gpu"], "_real_gpus", lambda: ())
    monkeypatch.setattr(ray_engine, "_connect", lambda ray, cpus, gpus=None: True)


@pytest.mark.parametrize("gpu_model", ["gpu-fp32", "auto"])
def test_a_head_without_a_gpu_lets_a_cluster_gpu_decide(small_inputs, small_features, tmp_path, monkeypatch,
                                                         capsys, gpu_model):
    """BACKEND=auto and GPU_MODEL (auto: its gates) decided by a task on a cluster GPU (two faked there, Ray giving
    it GPU 1), not on the driver, which has none and would pick the CPU; the lines name the worker's device."""
    from tinybert.classify.pipeline import ensure_model

    _headless(monkeypatch)
    calls = _fake_ray(monkeypatch, [1], cluster_gpus=2, worker_gpus="NVIDIA H200, NVIDIA A100")
    options = ClassifyOptions(str(small_inputs.tsv), engine="ray", backend="auto", gpu_model=gpu_model,
                              ckpt_dir=str(small_inputs.checkpoint), model_dir=str(tmp_path),
                              features_dir=str(small_features), device=0)
    with faked(gpu=""):
        ready, _ = ensure_model(options)
    said = capsys.readouterr().out
    assert ready.backend == "gpu" and ready.plan.options["device"] == 1
    assert {"num_gpus": 1, "max_retries": 0} in calls
    assert "decided on a GPU of the Ray cluster, this machine having none" in said
    assert "CUDA device 1 is NVIDIA A100 (faked" in said and "CUDA device 0" not in said


@pytest.mark.parametrize("backend", ["auto", "gpu"])
def test_a_cluster_without_a_gpu_is_decided_on_the_driver(small_inputs, tmp_path, monkeypatch, backend):
    """No GPU anywhere: no task waits for one; auto takes the CPU here, BACKEND=gpu is refused here."""
    from tinybert.classify.pipeline import ensure_model
    from tinybert.errors import BackendUnavailableError

    _headless(monkeypatch)
    calls = _fake_ray(monkeypatch, [], cluster_gpus=0)
    options = ClassifyOptions(str(small_inputs.tsv), engine="ray", backend=backend, gpu_model="gpu-fp32",
                              ckpt_dir=str(small_inputs.checkpoint), model_dir=str(tmp_path))
    with faked(gpu=""):
        if backend == "gpu":
            with pytest.raises(BackendUnavailableError, match="expected a GPU in the Ray cluster, found none"):
                ensure_model(options)
        else:  # decided here as before: the local prepare step (its export for the CPU left out)
            from types import SimpleNamespace

            local = []
            monkeypatch.setattr("tinybert.prepare.prepare", lambda request, among=None: local.append(request) or
                                SimpleNamespace(model="m.onnx", plan=SimpleNamespace(path="fast")))
            ensure_model(options)
            assert [r.backend for r in local] == ["auto"]
    assert calls == ["shutdown"]  # asked the cluster, ran nothing on it


def test_the_backend_line_names_device_not_device_0(small_inputs, monkeypatch):
    monkeypatch.delenv(FAKE_GPU_ENV, raising=False)
    request = route.Request(ckpt_dir=str(small_inputs.checkpoint), gpu_model="gpu-fp32", device=1)
    with faked(gpu="NVIDIA H200, NVIDIA A100"):
        name, why = route.explain_backend("auto", [1], request, among=("gpu", "onnxruntime"))
    assert name == "gpu" and "gpu: CUDA device 1 is NVIDIA A100 (faked" in why and "device 0" not in why


@pytest.mark.slow
def test_ray_on_a_faked_gpu_gives_the_local_engines_bytes(small_inputs, tmp_path):
    args = lambda out, *more: ["classify", small_inputs.tsv, "--output", out, "--ckpt_dir",  # noqa: E731
                               small_inputs.checkpoint, "--model_dir", tmp_path, "--backend", "gpu", "--gpu_model",
                               "gpu-fp32", "--batch_size", 8, "--chunk_sentences", 10, "--no_progress", *more]
    env = {FAKE_GPU_ENV: H200, "RAY_ADDRESS": ""}
    run_cli(*args(tmp_path / "local.tsv", "--tokenize_workers", 2), env=env, check=True)
    ray = run_cli(*args(tmp_path / "ray.tsv", "--engine", "ray", "--ray_cpus", 2), env=env)
    assert ray.returncode == 0, ray.stdout + ray.stderr
    assert "engine ray" in ray.stdout
    assert (tmp_path / "ray.tsv").read_bytes() == (tmp_path / "local.tsv").read_bytes()


# ---------------------------------------------------------------- SIGKILL with a process pool

def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_sigkill_with_a_process_pool_leaves_no_process_and_resumes_to_the_same_bytes(small_inputs, tmp_path):
    rng = random.Random(3)
    words = [w for w in WORDS if not w.startswith("##")]
    source = tmp_path / "big.tsv"
    source.write_text("sentence\tlabel\n" + "".join(f"{' '.join(rng.choices(words, k=rng.randint(1, 30)))}\t"
                                                    f"{rng.randint(0, 1)}\n" for _ in range(160)), encoding="utf-8")
    args = lambda out: [sys.executable, "-m", "tinybert", "classify", str(source), "--output", str(out),  # noqa: E731
                        "--ckpt_dir", str(small_inputs.checkpoint), "--model_dir", str(tmp_path), "--backend", "gpu",
                        "--gpu_model", "gpu-fp32", "--batch_size", "8", "--chunk_sentences", "8", "--no_progress",
                        "--tokenize_workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(REPO), FAKE_GPU_ENV: H200}
    reference, out = tmp_path / "reference.tsv", tmp_path / "out.tsv"
    subprocess.run(args(reference), env=env, check=True, capture_output=True)
    work = work_dir_for(str(out))
    proc = subprocess.Popen(args(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None and len([n for n in os.listdir(work) if n.endswith(".json")] if os.path.isdir(work)
                                      else []) < 5:  # run.json and 4 chunks of 20
        time.sleep(0.01)
    pool = _children(proc.pid)
    assert proc.poll() is None and len(pool) >= 2, "the run ended before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(map(_alive, pool)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, pool)), "pool processes outlived the killed run"
    assert not out.exists()
    resumed = subprocess.run(args(out), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "chunk(s) already done" in resumed.stdout
    assert out.read_bytes() == reference.read_bytes()


# ---------------------------------------------------------------- the check command

@pytest.mark.slow
def test_the_check_command_measures_and_compares_on_a_faked_gpu(small_inputs, tmp_path):
    env = {FAKE_GPU_ENV: H200, "CKPT_DIR": str(small_inputs.checkpoint), "MODEL_DIR": str(tmp_path),
           "GPU_MODEL": "gpu-fp16", "TOKENIZE_WORKERS": "2", "GPU_CLASSIFY_BATCH": "16"}
    proc = run_script("classify_gpu_check.sh", small_inputs.tsv, "--sentences", 300, "--work_dir", tmp_path / "check",
                      "--chunk_sentences", 64, "--no_progress", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path / "check" / "classify_check.json").read_text())
    lines = record["corpus"]["lines"]
    assert lines >= 300 and lines % small_inputs.count == 0 and record["corpus"]["copies"] == -(-300 // small_inputs.count)
    alone = record["tokenizer_alone"]
    assert set(alone) == {"threads", "processes"} and alone["processes"]["workers"] == 2
    assert all(route["sentences"] == lines and route["sentences_per_s"] > 0 for route in alone.values())
    assert record["tokenizer_route_used"] == "processes" and record["settings"]["batch_size"] == 16
    run, fp32 = record["classify"], record["fp32"]
    assert run["path"] == "gpu-fp16" and fp32["path"] == "gpu-fp32" and run["sentences"] == fp32["sentences"] == lines
    fastest = max(route["sentences_per_s"] for route in alone.values())
    assert record["ratio"] == pytest.approx(run["sentences_per_s"] / fastest)
    assert record["meets_target"] == (record["ratio"] >= 0.8) and record["target"] == 0.8
    labels = record["labels_vs_fp32"]
    assert labels["compared"] == lines and labels["identical"] == (labels["differing"] == 0)
    assert record["device"].startswith(H200) and "faked" in record["device"]
    assert "[SUMMARY] classify / tokenizer alone" in proc.stdout and "[SUMMARY] labels against gpu-fp32's" in proc.stdout
    without = run_script("classify_gpu_check.sh", small_inputs.tsv, cwd=tmp_path,
                         env={**env, FAKE_GPU_ENV: "", "TINYBERT_WITHOUT": "torch_cuda"})
    assert_clean_error(without, "expected a CUDA device torch can use", code=3)
