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


def held_job_ids(client, queues: tuple[str, ...] = ("cpu", "gpu"), namespace: str = "dramatiq",
                 silent_after_seconds: float = 60.0) -> set[int]:
    """The job ids of the messages that Redis will still deliver or that a live worker holds: those
    waiting in a queue (or its delay queue) and those fetched by a worker that spoke to Redis within
    `silent_after_seconds`. A message fetched by a worker that died stays in `<queue>.msgs` and in that
    worker's ack set, and Dramatiq gives it back only in a rare, random maintenance pass: it counts as
    lost. (A busy worker with a full prefetch is silent too; sending its waiting job again is harmless,
    as only one worker moves a job from queued to running.)"""
    import json
    import time

    now_ms = time.time() * 1000
    live = {worker.decode() if isinstance(worker, bytes) else worker for worker in
            client.zrangebyscore(f"{namespace}:__heartbeats__", now_ms - silent_after_seconds * 1000, "+inf")}
    held: set[int] = set()
    for queue in queues:
        for name in (queue, f"{queue}.DQ"):
            message_ids = set(client.lrange(f"{namespace}:{name}", 0, -1))
            for key in client.scan_iter(match=f"{namespace}:__acks__.*.{name}"):
                worker = (key.decode() if isinstance(key, bytes) else key)[len(f"{namespace}:__acks__."):]
                if worker[: -len(name) - 1] in live:
                    message_ids |= set(client.smembers(key))
            if not message_ids:
                continue
            for raw in client.hmget(f"{namespace}:{name}.msgs", list(message_ids)):
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
