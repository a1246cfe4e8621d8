"""Request statistics gathered in the serving process between two writes to the database: calls and
their latencies (reported by the web processes), forward passes and their sizes (seen here). No Django."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from nnc_web.engine.serving.batcher import Forward


@dataclass
class Tally:
    requests: int = 0
    errors: int = 0
    instances: int = 0
    batches: int = 0
    batched_instances: int = 0
    largest_batch: int = 0
    latencies: list[float] = field(default_factory=list)
    runtime: dict | None = None
    last_request: float | None = None  # time.time()
    tokens: dict[int, float] = field(default_factory=dict)  # endpoint token -> last use

    def empty(self) -> bool:
        return not (self.requests or self.batches or self.runtime)


class StatsBook:
    def __init__(self) -> None:
        self.tallies: dict[int, Tally] = defaultdict(Tally)

    def add_event(self, event: dict) -> None:
        """`{"endpoint", "status", "ms", "instances", "at", "token"?}` from a web process."""
        tally = self.tallies[int(event["endpoint"])]
        tally.requests += 1
        tally.errors += int(event["status"]) >= 400
        tally.instances += int(event.get("instances") or 0) if int(event["status"]) < 400 else 0
        tally.latencies.append(float(event["ms"]))
        tally.last_request = max(tally.last_request or 0.0, float(event.get("at") or 0.0))
        if event.get("token"):
            tally.tokens[int(event["token"])] = float(event.get("at") or 0.0)

    def add_forward(self, forward: Forward) -> None:
        for endpoint in forward.endpoints:
            if endpoint is None:
                continue
            tally = self.tallies[int(endpoint)]
            tally.batches += 1
            tally.batched_instances += forward.endpoints[endpoint]
            tally.largest_batch = max(tally.largest_batch, forward.size)
            tally.runtime = {**forward.runtime_report, "runtime": forward.runtime}

    def add_runtime(self, endpoint: int, runtime: str, report: dict) -> None:
        self.tallies[int(endpoint)].runtime = {**report, "runtime": runtime}

    def take(self) -> dict[int, Tally]:
        tallies = {k: v for k, v in self.tallies.items() if not v.empty()}
        self.tallies = defaultdict(Tally)
        return tallies


def percentiles(latencies: list[float]) -> dict:
    if not latencies:
        return {"p50": None, "p95": None, "p99": None}
    values = np.percentile(np.asarray(latencies, dtype=float), [50, 95, 99])
    return {"p50": round(float(values[0]), 2), "p95": round(float(values[1]), 2), "p99": round(float(values[2]), 2)}
