"""Small statistics shared by the benchmark scripts."""
from __future__ import annotations


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile, q in [0, 1]."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]
