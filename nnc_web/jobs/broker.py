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


def held_job_ids(client, queues: tuple[str, ...] = ("cpu", "gpu"), namespace: str = "dramatiq") -> set[int]:
    """The job ids of every message Redis holds for our queues: waiting, delayed or being worked on
    (Dramatiq keeps a message in `<queue>.msgs` until its worker acknowledges it)."""
    import json

    held: set[int] = set()
    for queue in queues:
        for name in (queue, f"{queue}.DQ"):
            for raw in client.hvals(f"{namespace}:{name}.msgs"):
                try:
                    args = json.loads(raw).get("args") or []
                    held.add(int(args[0]))
                except (ValueError, TypeError, IndexError, AttributeError):
                    continue
    return held


class JobSender:
    """Sends job messages to a given Redis, whatever broker this process's actors were bound to at
    import (the launcher imports them before its embedded Redis is up)."""

    ACTORS = {"cpu": "run_job_cpu", "gpu": "run_job_gpu"}

    def __init__(self, url: str) -> None:
        self.broker = RedisBroker(url=url)
        for queue in self.ACTORS:
            self.broker.declare_queue(queue)

    def __call__(self, job) -> None:
        queue = job.queue if job.queue in self.ACTORS else "cpu"
        self.broker.enqueue(dramatiq.Message(queue_name=queue, actor_name=self.ACTORS[queue], args=(job.pk,),
                                             kwargs={}, options={}))
