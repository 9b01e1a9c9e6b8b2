"""ENGINE=ray: the classify chunks as a Ray Data pipeline over an actor pool, one model session each, through the
local engine's worker, byte for byte a local run's (a shared file system needed); on a GPU path CPU tasks tokenize."""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
import warnings
from dataclasses import asdict, fields

from tinybert.classify.corpus import ChunkSpec
from tinybert.errors import BackendUnavailableError, PipelineError

SPEC_FIELDS = tuple(f.name for f in fields(ChunkSpec))


class ChunkActor:
    """One model session per actor; each call runs the chunks of its batch (one, as configured)."""

    def __init__(self, job, requests=None):
        import ray

        from tinybert.classify.worker import ChunkClassifier

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
        self.classifier = ChunkClassifier(job, threads=max(1, int(round(cpus))), requests=requests)

    def __call__(self, batch: dict) -> dict:
        return {"record": [json.dumps(self.classifier.run_chunk(spec)) for spec in _specs(batch)]}


def _plain(value):
    """A numpy scalar of a batch column as the Python value it was."""
    return value.item() if hasattr(value, "item") else value


def _specs(batch: dict) -> list[ChunkSpec]:
    return [ChunkSpec(**{name: _plain(batch[name][row]) for name in SPEC_FIELDS})
            for row in range(len(batch["number"]))]


_tokenizers: dict = {}  # a Ray worker process's tokenizer, by vocabulary, kept across the tasks it runs


def tokenize_chunks(batch: dict, job) -> dict:
    """A Ray Data CPU task on a GPU path: read, parse and tokenize the batch's chunks on its one CPU (the tokenizer's
    own threads off); each chunk leaves as a pickled `tokenizing.pack`."""
    import numpy as np

    from tinybert.classify.tokenizing import SERIAL, pack, prepare_chunk
    from tinybert.data.features import load_wordpiece_tokenizer

    os.environ.update(SERIAL)
    tokenize_job = job.tokenize_job
    vocab = tokenize_job.vocab_file
    if vocab not in _tokenizers:
        _tokenizers[vocab] = load_wordpiece_tokenizer(vocab)
    packed = [pickle.dumps(pack(prepare_chunk(tokenize_job, spec, _tokenizers[vocab]))) for spec in _specs(batch)]
    return {"prepared": np.array(packed, dtype=object)}


class GpuChunkActor:
    """A GPU path's actor: the model on its one GPU, run on chunks the CPU tasks tokenized; writes their shards."""

    def __init__(self, job, requests=None, warm_up: bool = False):
        from dataclasses import replace

        from tinybert.classify.worker import ChunkClassifier

        # The driver's DEVICE names a GPU of the driver's machine (maybe none): the actor runs on the one Ray gave it.
        self.classifier = ChunkClassifier(replace(job, device=actor_device()), threads=1, requests=requests)
        self.warm_up = self.classifier.warm_up(job.batch_size) if warm_up else (0, 0.0)  # before its first chunk

    def __call__(self, batch: dict) -> dict:
        from tinybert.classify.tokenizing import unpack

        seq_len = self.classifier.job.seq_len
        return {"record": [json.dumps(self.classifier.finish(unpack(pickle.loads(bytes(packed)), seq_len)))
                           for packed in batch["prepared"]]}


def actor_device() -> int:
    """The CUDA device of this actor's GPU: Ray shows an actor its assigned GPU alone (CUDA_VISIBLE_DEVICES), as
    device 0; faked GPUs are not masked, so there the assigned id is the device."""
    from tinybert.capabilities import gpus

    ray = sys.modules.get("ray")  # imported in every Ray worker; a stage called directly, outside Ray, may lack it
    assigned = ray.get_gpu_ids() if ray is not None and ray.is_initialized() else []
    found = gpus()
    return int(assigned[0]) if assigned and found and found[0].faked else 0


def on_a_cluster_gpu(options, function, *args, **kwargs):
    """`function(*args, **kwargs)` run on one GPU of the Ray cluster (RAY_ADDRESS's, else a local one), its result;
    None where the cluster has no GPU (a task asking for one would wait for ever)."""
    import ray

    from tinybert.capabilities import gpus

    faked = [g for g in gpus() if g.faked]
    started = _connect(ray, options.ray_cpus, len(faked) or None)
    try:
        if not ray.cluster_resources().get("GPU"):
            return None
        return ray.get(ray.remote(num_gpus=1, max_retries=0)(function).remote(*args, **kwargs))
    finally:
        if started:
            ray.shutdown()


def prepared_on_a_cluster_gpu(options, request, among):
    """`prepare(request)` decided on a GPU of the cluster, the one the actors run on, for a driver without one (a head
    node): BACKEND=auto, the gates and GPU_MODEL=auto judged there; None where the cluster has no GPU."""
    return on_a_cluster_gpu(options, _prepare_here, request, among)


def _prepare_here(request, among):
    from dataclasses import replace

    from tinybert.prepare import prepare

    return prepare(replace(request, device=actor_device()), among=among, quiet=True)


def on_gpu(job) -> bool:
    from tinybert.registry import run_path

    return run_path(job.path).on_gpu


def actor_resources(job, options) -> dict:
    """What each actor asks Ray for: ACTOR_CPUS, and one GPU when the path runs on one (Ray then shows the actor
    that GPU alone, as its device 0)."""
    return {"num_cpus": options.actor_cpus, **({"num_gpus": 1} if on_gpu(job) else {})}


def _connect(ray, cpus: int | None, gpus: int | None = None) -> bool:
    """Join RAY_ADDRESS's cluster, else start a local one (with `gpus` GPUs: None, Ray counts them); returns
    whether this process started it."""
    import tinybert
    from tinybert.capabilities import FAKE_GPU_ENV

    env = {FAKE_GPU_ENV: os.environ[FAKE_GPU_ENV]} if os.environ.get(FAKE_GPU_ENV) else {}
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False,
             "runtime_env": {"py_modules": [os.path.dirname(tinybert.__file__)], **({"env_vars": env} if env else {})}}
    address = os.environ.get("RAY_ADDRESS")
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BackendUnavailableError(f"RAY_ADDRESS={address}: expected a running Ray cluster to join, got "
                                          f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                                          "(unset RAY_ADDRESS to start a local one)") from None
        return False
    ray.init(address="local", num_cpus=cpus, num_gpus=gpus, include_dashboard=False, **quiet)
    return True


def _quiet_data(ray) -> None:
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.verbose_stats_logs = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _pipeline_error(exc: BaseException) -> PipelineError | None:
    """The PipelineError an actor raised, found in the exceptions Ray wraps it in."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, PipelineError):
            return exc
        exc = getattr(exc, "cause", None) or exc.__cause__
    return None


def actor_count(ray, options, pending: int, job=None) -> int:
    """--actors, else as many as the cluster's CPUs (and GPUs, one an actor, on a GPU path) allow; never more than
    the chunks to run."""
    if options.actors:
        wanted = options.actors
    else:
        wanted = int(ray.cluster_resources().get("CPU", 1) // options.actor_cpus)
        if job is not None and on_gpu(job):
            wanted = min(wanted, int(ray.cluster_resources().get("GPU", 0)))
    return max(1, min(wanted, pending))


def _pipeline(ray, job, pending: list[ChunkSpec], options, restarts: bool):
    """One row per pending chunk, one block each, through an actor pool of model sessions; on a GPU path through
    tokenizing CPU tasks first."""
    items = [asdict(spec) for spec in pending]
    # A cluster restarts a lost actor (a node gone); locally a restart repeats the failure (memory) and logs errors.
    # Ray 2.60 takes max_restarts only through its deprecated **ray_remote_args (revisit when upgrading).
    remote_args = {} if restarts else {"max_restarts": 0}
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    actor, constructor = ChunkActor, {"job": job, "requests": options.requests}
    if on_gpu(job):
        dataset = dataset.map_batches(tokenize_chunks, batch_size=1, num_cpus=1, fn_kwargs={"job": job})
        # a full batch may occur: its shapes captured before the actor's first chunk, as the local engine does
        actor, constructor["warm_up"] = GpuChunkActor, any(spec.lines >= job.batch_size for spec in pending)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        return dataset.map_batches(
            actor, batch_size=1, **actor_resources(job, options),
            compute=ray.data.ActorPoolStrategy(size=actor_count(ray, options, len(items), job)),
            fn_constructor_kwargs=constructor, **remote_args)


def run_ray(job, pending: list[ChunkSpec], options, progress, records: list) -> None:
    """Run the pending chunks on a Ray actor pool; `records` receives each chunk's record."""
    if not pending:
        return
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise BackendUnavailableError(f"ENGINE=ray needs Ray Data, not installed for {sys.executable}: "
                                      "pip install 'ray[data]' (the version in requirements.txt)") from None

    from tinybert.capabilities import gpus

    # A faked GPU is no device Ray can count: the local cluster is told of it.
    faked = [g for g in gpus() if g.faked] if on_gpu(job) else []
    started = _connect(ray, options.ray_cpus, len(faked) or None)
    try:
        _quiet_data(ray)
        dataset = _pipeline(ray, job, pending, options, restarts=not started)
        for row in dataset.iter_rows():
            records.append(json.loads(row["record"]))
            progress.bar.update(records[-1]["lines"])
    except Exception as exc:
        cause = _pipeline_error(exc)
        if cause is None:
            raise
        raise type(cause)(str(cause)) from None
    finally:
        if started:
            ray.shutdown()
