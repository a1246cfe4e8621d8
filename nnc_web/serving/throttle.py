"""Calls per token and endpoint: a token bucket (the endpoint's rate per minute, a burst of two
seconds' worth) kept in Redis, so every web process counts against the same bucket. Without Redis
(tests) the bucket lives in this process."""
from __future__ import annotations

import math
import threading
import time

from nnc_web import config

# KEYS[1] bucket; ARGV rate (tokens/s), burst, now (s). Returns {allowed, seconds to wait}.
_SCRIPT = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 2)
return {allowed, tostring(wait)}
"""

_scripts: dict[str, object] = {}
_local: dict[str, tuple[float, float]] = {}
_local_lock = threading.Lock()


def burst_of(rate_per_minute: int) -> float:
    return max(1.0, math.ceil(rate_per_minute / 30))  # two seconds' worth


def allow(key: str, rate_per_minute: int) -> tuple[bool, float]:
    """(allowed, seconds until the next call would be) for one call under `key`."""
    rate, burst, now = rate_per_minute / 60.0, burst_of(rate_per_minute), time.time()
    url = config.redis_url()
    if url:
        try:
            script = _scripts.get(url)
            if script is None:
                import redis

                script = _scripts[url] = redis.Redis.from_url(url, socket_timeout=5).register_script(_SCRIPT)
            allowed, wait = script(keys=[f"nnc:serving:bucket:{key}"], args=[rate, burst, now])
            return bool(int(allowed)), float(wait)
        except Exception:  # noqa: BLE001 - the broker is down: the call itself will answer 503
            return True, 0.0
    with _local_lock:
        tokens, at = _local.get(key, (burst, now))
        tokens = min(burst, tokens + max(0.0, now - at) * rate)
        if tokens >= 1:
            _local[key] = (tokens - 1, now)
            return True, 0.0
        _local[key] = (tokens, now)
        return False, (1 - tokens) / rate
