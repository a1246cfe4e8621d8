"""Choose the Dramatiq broker before any actor is declared: Redis, or a stub for unit tests."""
from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from nnc_web import config

_configured: dramatiq.Broker | None = None


def configure_broker() -> dramatiq.Broker:
    global _configured
    if _configured is not None:
        return _configured
    url = config.redis_url()
    if os.environ.get("DRAMATIQ_BROKER") == "stub" or not url:
        broker: dramatiq.Broker = StubBroker()
        broker.emit_after("process_boot")
    else:
        broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)
    _configured = broker
    return broker
