"""The server's Prometheus metrics, one registry per app: requests by status, latency, batch rows and tokens, queue
depth and requests in flight, each labelled by replica; Ray Serve's replicas share them through one folder."""

from __future__ import annotations

import os

BATCH_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable: replicas write their values there


class Metrics:
    """The metrics of one app; `replica` tells replicas apart (the process id unless given)."""

    def __init__(self, replica: str | None = None):
        if os.environ.get(MULTIPROCESS_ENV):  # a replica on a node where the entry point's folder does not exist
            os.makedirs(os.environ[MULTIPROCESS_ENV], exist_ok=True)
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.replica = replica or str(os.getpid())
        self.registry = registry = CollectorRegistry()
        labels = ("replica",)
        self.requests = Counter("tinybert_requests", "HTTP requests answered, by status and TEI error type",
                                labels + ("status", "error_type"), registry=registry)
        self.sentences = Counter("tinybert_sentences", "sentences classified", labels, registry=registry)
        self.latency = Histogram("tinybert_request_duration_seconds", "time from a request's arrival to its answer",
                                 labels, buckets=LATENCY_S, registry=registry)
        self.batch_rows = Histogram("tinybert_batch_size", "sentences per model call", labels, buckets=BATCH_ROWS,
                                    registry=registry)
        self.batch_tokens = Histogram("tinybert_batch_tokens", "positions per model call (rows x longest)", labels,
                                      buckets=tuple(16 * 2 ** k for k in range(12)), registry=registry)
        self.batch_reason = Counter("tinybert_batches", "model calls, by what closed the batch", labels + ("reason",),
                                    registry=registry)
        self.queue = Gauge("tinybert_queue_depth", "requests waiting for the model", labels, registry=registry,
                           multiprocess_mode="livesum")
        self.in_flight = Gauge("tinybert_in_flight", "requests accepted and not yet answered", labels,
                               registry=registry, multiprocess_mode="livesum")

    def batch(self, stats) -> None:
        self.batch_rows.labels(self.replica).observe(stats.rows)
        self.batch_tokens.labels(self.replica).observe(stats.rows * stats.longest)
        self.batch_reason.labels(self.replica, stats.reason).inc()

    def answered(self, status: int, error_type: str, seconds: float) -> None:
        self.requests.labels(self.replica, str(status), error_type).inc()
        self.latency.labels(self.replica).observe(seconds)

    def text(self) -> bytes:
        """The exposition text of this app's metrics (this process's values)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def serve_folder(folder: str, port: int, host: str):
    """The replicas' metrics summed from the multiprocess folder, served on their own port; returns the server."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)
    server, _ = start_http_server(port, addr=host, registry=registry)
    return server, registry


def sample(registry, name: str, **labels) -> float:
    """The sum of a metric's samples named `name` whose labels include `labels` (0 when none)."""
    return sum(s.value for family in registry.collect() for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))
