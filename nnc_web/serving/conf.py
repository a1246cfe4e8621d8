"""Serving settings, from the environment (read once per process)."""
from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


# Defaults of a new endpoint's limits (each endpoint can change its own).
DEFAULT_MAX_INSTANCES = 64
DEFAULT_MAX_BODY_BYTES = 20 * 1024**2
DEFAULT_MAX_IMAGE_PIXELS = 25_000_000
DEFAULT_RATE_PER_MINUTE = 6000
# The most an endpoint may be set to.
MAX_INSTANCES = _int("NNC_SERVING_MAX_INSTANCES", 1000)
MAX_BODY_BYTES = _int("NNC_SERVING_MAX_BODY_BYTES", 64 * 1024**2)

# The serving process: how long it waits for more requests after the first (ms), how many requests it
# takes at once, how many models it keeps loaded, which device and runtime.
BATCH_WAIT_MS = _float("NNC_SERVING_BATCH_WAIT_MS", 2.0)
MAX_REQUESTS = _int("NNC_SERVING_MAX_REQUESTS", 64)
CACHE_MODELS = _int("NNC_SERVING_CACHE_MODELS", 4)
DEVICE = os.environ.get("NNC_SERVING_DEVICE", "auto")  # auto | cpu | cuda
RUNTIME = os.environ.get("NNC_SERVING_RUNTIME", "auto")  # auto | torch | onnxruntime
DECODE_THREADS = _int("NNC_SERVING_DECODE_THREADS", max(1, min(8, os.cpu_count() or 1)))
# How long a web process waits for the answer (s); the statistics flush period (s).
TIMEOUT_SECONDS = _float("NNC_SERVING_TIMEOUT_SECONDS", 30.0)
STATS_SECONDS = _float("NNC_SERVING_STATS_SECONDS", 1.0)
LATENCY_WINDOW = 1000  # percentiles are over this many latest requests
