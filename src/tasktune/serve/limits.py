"""What the server admits before it computes anything, and what it counts.

Every limit has a default and a `tasktune serve` flag. A request over a limit is refused with a
message naming the limit (413 body too large, 422 too many inputs or too long a field, 503 with
Retry-After when the queue is full, 504 past the deadline, 401 without the API key).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from tasktune.config_ranges import check_ranges, ranged


class Refused(Exception):
    """A request the server will not run: HTTP status, message, headers."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


SHUTDOWN_GRACE_S = 5.0  # how long shutdown lets queued work finish before failing it with 503


@dataclass
class ServeLimits:
    max_body_bytes: int = ranged(1_000_000, min=1)
    """Largest request body in bytes (413 above it)."""
    max_inputs: int = ranged(256, min=1)
    """Most inputs in one request (422 above it)."""
    max_field_chars: int = ranged(20_000, min=1)
    """Longest text of one input field, in characters (422 above it)."""
    max_queue: int = ranged(2048, min=1)
    """Most inputs waiting for the model; a request that would exceed it gets 503 with Retry-After."""
    request_timeout_s: float = ranged(30.0, min=0.01)
    """Deadline of one request, queueing included (504 after it; its queued work is dropped)."""
    max_tasks: int = ranged(1000, min=1)
    """Most tasks held at once; past it, loading from --task-root evicts the least recently used idle one."""
    api_key: str = ""
    """Bearer token every request must carry (default: the TASKTUNE_API_KEY environment variable; empty: none)."""

    def __post_init__(self):
        check_ranges(self)
        if not self.api_key:
            self.api_key = os.environ.get("TASKTUNE_API_KEY", "")


BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Histogram:
    def __init__(self, buckets: tuple):
        self.buckets, self.counts, self.total, self.n = buckets, [0] * len(buckets), 0.0, 0

    def observe(self, value: float) -> None:
        for i, b in enumerate(self.buckets):
            if value <= b:
                self.counts[i] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str) -> list[str]:
        out = [f'{name}_bucket{{le="{b}"}} {c}' for b, c in zip(self.buckets, self.counts, strict=True)]
        return out + [f'{name}_bucket{{le="+Inf"}} {self.n}', f"{name}_sum {self.total}", f"{name}_count {self.n}"]


class ServerMetrics:
    """Counters in Prometheus' text format (GET /metrics)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: dict[int, int] = {}
        self.dropped = 0
        self.latency = Histogram(BUCKETS)
        self.batch_sizes = Histogram(BATCH_BUCKETS)

    def request(self, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[status] = self.requests.get(status, 0) + 1
            self.latency.observe(seconds)

    def batch(self, size: int) -> None:
        with self.lock:
            self.batch_sizes.observe(size)

    def render(self, queue_depth: int, tasks: int) -> str:
        with self.lock:
            lines = ["# TYPE tasktune_requests_total counter"]
            lines += [f'tasktune_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.requests.items())]
            errors = sum(n for s, n in self.requests.items() if s >= 400)
            lines += ["# TYPE tasktune_errors_total counter", f"tasktune_errors_total {errors}",
                      "# TYPE tasktune_dropped_inputs_total counter", f"tasktune_dropped_inputs_total {self.dropped}",
                      "# TYPE tasktune_queue_depth gauge", f"tasktune_queue_depth {queue_depth}",
                      "# TYPE tasktune_tasks gauge", f"tasktune_tasks {tasks}",
                      "# TYPE tasktune_request_seconds histogram", *self.latency.lines("tasktune_request_seconds"),
                      "# TYPE tasktune_batch_size histogram", *self.batch_sizes.lines("tasktune_batch_size")]
        return "\n".join(lines) + "\n"
