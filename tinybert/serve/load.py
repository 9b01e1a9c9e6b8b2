"""A bounded open-loop load on a running server over loopback, stopping by itself: latency percentiles, the mean
batch size and sentences per replica from the metrics, and the highest rate held under a latency bound."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass

import numpy as np

from tinybert.errors import UsageError, expect

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_SECONDS = 120.0  # one rate's run at most: the load stops by itself
MAX_REQUESTS = 100_000  # requests over all rates at most


@dataclass(frozen=True)
class RateResult:
    qps: float
    sent: int
    ok: int
    overloaded: int
    failed: int
    p50_ms: float
    p99_ms: float
    achieved_qps: float
    mean_batch: float

    def line(self) -> str:
        return (f"qps {self.qps:g}: sent {self.sent}, ok {self.ok}, 429 {self.overloaded}, other errors {self.failed}, "
                f"p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, achieved {self.achieved_qps:.1f}/s, "
                f"mean batch {self.mean_batch:.2f}")


def scrape(url: str) -> dict[str, float]:
    """The metrics page as {name{labels}: value}, summed over nothing (one line each)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode("utf-8")
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = values.get(name, 0.0) + float(value)
    return values


def total(values: dict[str, float], name: str, **labels) -> float:
    """The sum of `name`'s series whose labels include `labels`."""
    found = 0.0
    for key, value in values.items():
        base, _, rest = key.partition("{")
        if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            found += value
    return found


def per_replica(values: dict[str, float]) -> dict[str, float]:
    """Sentences classified per replica label."""
    out = {}
    for key, value in values.items():
        if key.startswith("tinybert_sentences_total{"):
            replica = key.split('replica="', 1)[1].split('"', 1)[0]
            out[replica] = out.get(replica, 0.0) + value
    return out


async def _post(host: str, port: int, body: bytes) -> tuple[int, float]:
    tick = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"POST /predict HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (host.encode(), len(body), body))
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        await reader.read()
    finally:
        writer.close()
    return status, time.perf_counter() - tick


async def _run_rate(host: str, port: int, bodies: list[bytes], qps: float, seconds: float) -> list[tuple[int, float]]:
    """Open loop: request k starts at k / qps whatever the answers; all answered before returning."""
    count = max(1, int(qps * seconds))
    start = time.perf_counter()
    tasks = []
    for k in range(count):
        delay = start + k / qps - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_post(host, port, bodies[k % len(bodies)])))
    results = []
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        results.append(outcome if isinstance(outcome, tuple) else (0, float("nan")))
    return results


def run_load(sentences: list[str], *, host: str, port: int, metrics_url: str, rates: list[float], seconds: float,
             bound_ms: float, per_request: int = 1, log=print) -> dict:
    """Each rate for `seconds`; the report: one RateResult per rate, the highest rate whose p99 stayed within
    `bound_ms` with no errors, and sentences per replica."""
    expect(host in LOOPBACK, UsageError, f"expected a loopback host ({', '.join(LOOPBACK)}), got {host!r}")
    expect(0 < seconds <= MAX_SECONDS, UsageError, f"expected 0 < seconds <= {MAX_SECONDS:g}, got {seconds:g}")
    expect(bool(rates) and all(r > 0 for r in rates), UsageError, f"expected positive rates, got {rates}")
    expect(sum(rates) * seconds <= MAX_REQUESTS, UsageError,
           f"expected at most {MAX_REQUESTS} requests in all, got {sum(rates) * seconds:g}")
    expect(bool(sentences), UsageError, "expected sentences to send, got none")
    bodies = [json.dumps({"inputs": sentences[k:k + per_request] if per_request > 1 else sentences[k],
                          "truncate": True}).encode() for k in range(0, len(sentences), per_request)]
    results, held = [], None
    for qps in sorted(rates):
        before = scrape(metrics_url)
        tick = time.perf_counter()
        answers = asyncio.run(_run_rate(host, port, bodies, qps, seconds))
        wall = time.perf_counter() - tick
        after = scrape(metrics_url)
        rows = total(after, "tinybert_batch_size_sum") - total(before, "tinybert_batch_size_sum")
        calls = total(after, "tinybert_batch_size_count") - total(before, "tinybert_batch_size_count")
        status = np.array([s for s, _ in answers])
        ok_ms = np.array([t for s, t in answers if s == 200]) * 1000.0
        result = RateResult(qps, len(answers), int((status == 200).sum()), int((status == 429).sum()),
                            int(((status != 200) & (status != 429)).sum()),
                            float(np.percentile(ok_ms, 50)) if ok_ms.size else float("nan"),
                            float(np.percentile(ok_ms, 99)) if ok_ms.size else float("nan"),
                            int((status == 200).sum()) / wall, rows / calls if calls else 0.0)
        log(result.line())
        results.append(result)
        if result.ok == result.sent and result.p99_ms <= bound_ms:
            held = qps
    replicas = per_replica(scrape(metrics_url))
    log(f"highest rate held with p99 <= {bound_ms:g} ms: {held if held is not None else 'none'}; "
        f"sentences per replica: {json.dumps(replicas)}")
    return {"rates": [r.__dict__ for r in results], "held_qps": held, "bound_ms": bound_ms,
            "sentences_per_replica": replicas}
