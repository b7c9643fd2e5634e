"""Prometheus text-format metrics of the service: requests by route and status, latency histograms,
errors, and model batch sizes. Small enough to keep by hand rather than add prometheus_client."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict
from typing import Callable, Iterable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Histogram:
    """Cumulative-bucket histogram (Prometheus semantics: le buckets, sum, count)."""

    def __init__(self, buckets: Iterable[float]):
        self.buckets = tuple(sorted(buckets))
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        sep = "," if labels else ""
        for bound, count in zip(self.buckets + (float("inf"),), self.counts):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {running}')
        out.append(f"{name}_sum{{{labels}}} {self.sum:.6f}" if labels else f"{name}_sum {self.sum:.6f}")
        out.append(f"{name}_count{{{labels}}} {running}" if labels else f"{name}_count {running}")
        return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe counters and histograms, rendered as Prometheus exposition text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], Histogram] = {}
        self.errors: dict[tuple[str, str], int] = defaultdict(int)
        self.batches = Histogram(BATCH_BUCKETS)
        self.batch_seconds = Histogram(LATENCY_BUCKETS)
        self.gauges: dict[str, Callable[[], dict[str, float]]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            key = (method, route)
            if key not in self.latency:
                self.latency[key] = Histogram(LATENCY_BUCKETS)
            self.latency[key].observe(seconds)
            if status >= 500:
                self.errors[(route, "server")] += 1
            elif status >= 400:
                self.errors[(route, "client")] += 1

    def observe_batch(self, size: int, seconds: float) -> None:
        with self._lock:
            self.batches.observe(size)
            self.batch_seconds.observe(seconds)

    def gauge(self, name: str, read: Callable[[], dict[str, float]]) -> None:
        """Register a gauge family read at render time: read() -> {label value: number}."""
        self.gauges[name] = read

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP simsearch_requests_total HTTP requests by method, route and status.",
                     "# TYPE simsearch_requests_total counter"]
            for (method, route, status), count in sorted(self.requests.items()):
                lines.append(f'simsearch_requests_total{{method="{method}",route="{_escape(route)}",'
                             f'status="{status}"}} {count}')
            lines += ["# HELP simsearch_request_duration_seconds Request latency, from first byte in to response.",
                      "# TYPE simsearch_request_duration_seconds histogram"]
            for (method, route), histogram in sorted(self.latency.items()):
                lines += histogram.lines("simsearch_request_duration_seconds",
                                         f'method="{method}",route="{_escape(route)}"')
            lines += ["# HELP simsearch_errors_total Responses with a 4xx (client) or 5xx (server) status.",
                      "# TYPE simsearch_errors_total counter"]
            for (route, kind), count in sorted(self.errors.items()):
                lines.append(f'simsearch_errors_total{{route="{_escape(route)}",kind="{kind}"}} {count}')
            lines += ["# HELP simsearch_batch_size Images per model call.", "# TYPE simsearch_batch_size histogram"]
            lines += self.batches.lines("simsearch_batch_size", "")
            lines += ["# HELP simsearch_batch_seconds Seconds per model call.",
                      "# TYPE simsearch_batch_seconds histogram"]
            lines += self.batch_seconds.lines("simsearch_batch_seconds", "")
        for name, read in sorted(self.gauges.items()):
            lines += [f"# TYPE {name} gauge"]
            for label, value in sorted(read().items()):
                lines.append(f'{name}{{label="{_escape(label)}"}} {value:g}' if label else f"{name} {value:g}")
        return "\n".join(lines) + "\n"
