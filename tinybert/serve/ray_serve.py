"""The server on Ray Serve: one deployment whose replicas each open the Engine once and serve the FastAPI app, Ray's
own queue limit answering 429 with Retry-After; the entry point drains on SIGTERM, stops Serve and exits 0."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field

from tinybert.serve.app import Limits
from tinybert.serve.metrics import MULTIPROCESS_ENV
from tinybert.settings import SERVE_DRAIN_S

APP_NAME = "tinybert"
DEPLOYMENT = "TinyBertClassifier"
DRAIN_TIMEOUT_S = 30.0  # the longest the entry point waits for answers in flight after the drain
# Ray Serve's queue limit per caller sits above each replica's own (SERVE_MAX_QUEUED): the replica's TEI-shaped 429
# is what a client normally meets; Serve's own 429 only guards the router.
ROUTER_QUEUE_FACTOR = 4


@dataclass(frozen=True)
class ServeConfig:
    """What each replica needs, picklable: the checkpoint, the Classifier's settings and the limits."""

    checkpoint: str
    settings: dict = field(default_factory=dict)  # Classifier.open's keywords (backend, ort_model, ...)
    limits: Limits = Limits()
    drain_flag: str | None = None
    model_id: str = ""


class Replica:
    """A Ray Serve replica's body (the deployment wraps it): opens the engine, warms it, then builds the app."""

    def __init__(self, config: dict):
        from tinybert.serve.app import Server
        from tinybert.serve.engine import Engine

        config = ServeConfig(**{**config, "limits": Limits(**config["limits"])})
        self.server = Server(Engine.open(config.checkpoint, **config.settings), config.limits,
                             drain_flag=config.drain_flag, model_id=config.model_id)
        self.server.warm_up()

    def __serve_build_asgi_app__(self):
        from tinybert.serve.app import create_app

        return create_app(self.server)


def deployment(replicas: int | None, limits: Limits, gpu: bool, metrics_dir: str | None):
    """The Serve deployment of Replica: `replicas` of it (None: the config file's count or autoscaling), one GPU
    each on a GPU path."""
    from ray import serve
    from ray.serve.config import BackpressureConfig

    env = {MULTIPROCESS_ENV: metrics_dir} if metrics_dir else {}
    options = {"num_cpus": 0 if gpu else 1, "num_gpus": 1 if gpu else 0, "runtime_env": {"env_vars": env}}
    wrapped = serve.ingress()(Replica)
    count = {} if replicas is None else {"num_replicas": replicas}
    return serve.deployment(wrapped, name=DEPLOYMENT, **count, ray_actor_options=options,
                            max_ongoing_requests=limits.max_queued + 8,
                            max_queued_requests=ROUTER_QUEUE_FACTOR * limits.max_queued,
                            backpressure_config=BackpressureConfig(status_code=429, retry_after_s=limits.retry_after),
                            graceful_shutdown_wait_loop_s=0.5, graceful_shutdown_timeout_s=DRAIN_TIMEOUT_S)


def cluster_app(args: dict):
    """`serve deploy`'s application builder (test/serve_config.yaml): args `checkpoint`, `settings` (Classifier.open's
    keywords), `gpu` and `limits` (Limits' fields)."""
    limits = Limits(**args.get("limits", {}))
    config = ServeConfig(args["checkpoint"], dict(args.get("settings") or {}), limits,
                         model_id=os.path.basename(os.path.normpath(args["checkpoint"])))
    return deployment(None, limits, bool(args.get("gpu")), None).bind({**asdict(config), "limits": asdict(limits)})


def wants_gpu(settings: dict) -> bool:
    """Whether the settings' BACKEND runs on a CUDA GPU here (auto: where the gpu backend can run), so each replica
    takes one."""
    from tinybert.registry import backend
    from tinybert.runtimes.needs import backend_unmet

    requested = settings.get("backend") or "auto"
    return requested == "gpu" or (requested == "auto" and backend_unmet(backend("gpu")) is None)


class Stop:
    """SIGTERM and Ctrl-C as a flag the serving loop polls: the signal handler only records it."""

    def __init__(self):
        self.event = threading.Event()
        self.signal: int | None = None

    def __call__(self, signum, frame):
        self.signal = signum
        self.event.set()


def _handle(previous: dict, stop: Stop) -> None:
    """Our handlers again: Ray's core worker puts its own in place of them when it starts."""
    for sig in previous:
        signal.signal(sig, stop)


def run_server(config: ServeConfig, *, host: str, port: int, metrics_port: int, replicas: int,
               drain_s: float = SERVE_DRAIN_S, ready_file: str | None = None, log=print) -> int:
    """Serve until SIGTERM or Ctrl-C, then drain (/health 503 for `drain_s` and until nothing is in flight),
    stop Serve and return 0; `ready_file` is written once every replica is ready."""
    stop = Stop()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    work = tempfile.mkdtemp(prefix="tinybert-serve-")
    metrics_dir = os.path.join(work, "metrics")
    os.makedirs(metrics_dir)
    config = ServeConfig(**{**asdict(config), "limits": config.limits, "drain_flag": os.path.join(work, "draining")})
    started = []  # what to stop on the way out, last first
    try:
        from tinybert.api import Classifier

        # Exported and gated once here, not by each replica at once; a wrong setting is one line before Ray starts.
        ready = Classifier.prepare(config.checkpoint, **config.settings, quiet=False)
        log(f"[INFO] {ready.plan.describe()}")
        import ray
        from ray import serve

        from tinybert.serve.metrics import sample, serve_folder

        metrics_server, registry = serve_folder(metrics_dir, metrics_port, host)
        started.append(metrics_server.shutdown)
        joining = bool(os.environ.get("RAY_ADDRESS"))  # a cluster's resources are its own
        ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False,
                 **({} if joining else {"num_cpus": max(os.cpu_count() or 1, replicas)}))
        started.append(ray.shutdown)
        _handle(previous, stop)
        serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})
        started.append(serve.shutdown)
        app = deployment(replicas, config.limits, wants_gpu(config.settings), metrics_dir).bind(
            {**asdict(config), "limits": asdict(config.limits)})
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        _handle(previous, stop)
        log(f"serving http://{host}:{port}/predict ({replicas} replica(s)), metrics on http://{host}:{metrics_port}/")
        if ready_file:
            with open(ready_file, "w") as handle:
                handle.write(f"{port} {metrics_port}\n")
        while not stop.event.wait(0.2):
            pass
        log("draining: /health answers 503, requests in flight finish")
        open(config.drain_flag, "w").close()
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        time.sleep(drain_s)
        while sample(registry, "tinybert_in_flight") > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        while started:
            started.pop()()
        log("stopped")
        return 0
    finally:
        while started:  # a failed start: Serve and Ray go too
            started.pop()()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        import shutil

        shutil.rmtree(work, ignore_errors=True)
