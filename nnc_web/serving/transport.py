"""How a web process hands a request to the serving process and gets the answer: Redis (the broker
the studio already runs). Requests go on one list; the serving process takes whatever is waiting
(blocking for the first, then a short configurable wait for more, so requests that arrive together are
batched) and pushes each answer on the request's own key, which the web process waits on with a
timeout. A heartbeat key with a TTL tells the web process at once when no serving process is running.

A message is a JSON header line, a newline, then the request body exactly as the client sent it (the
web process has parsed it to check it; passing it on as it came saves serialising it again). Answers
are the same: a header line (status), then the JSON body the client gets. No Django here."""
from __future__ import annotations

import json
import time
import uuid

import redis

PREFIX = "nnc:serving"
REQUESTS = f"{PREFIX}:requests"
ALIVE = f"{PREFIX}:alive"
EVENTS = f"{PREFIX}:events"
EVENTS_KEPT = 100_000  # a serving process that is down for long loses the oldest statistics, not memory
ANSWER_TTL = 60


class ServingUnavailable(Exception):
    """No serving process is running (it is restarted by the launcher)."""


class ServingTimeout(Exception):
    """The serving process did not answer in time."""


def answer_key(request_id: str) -> str:
    return f"{PREFIX}:answer:{request_id}"


def pack(header: dict, body: bytes) -> bytes:
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + body


def unpack(message: bytes) -> tuple[dict, bytes]:
    header, _, body = message.partition(b"\n")
    return json.loads(header), body


class RedisTransport:
    def __init__(self, url: str) -> None:
        # No socket timeout: BLPOP blocks on purpose (its own timeout bounds the wait).
        self.client = redis.Redis.from_url(url, socket_timeout=None, socket_connect_timeout=5,
                                           health_check_interval=30)

    # -- the web process's side -------------------------------------------------------------------
    def alive(self) -> bool:
        return bool(self.client.exists(ALIVE))

    def call(self, header: dict, body: bytes, timeout: float) -> tuple[int, bytes]:
        """Send one request; (status, answer body). Raises ServingUnavailable / ServingTimeout."""
        if not self.alive():
            raise ServingUnavailable
        request_id = uuid.uuid4().hex
        self.client.rpush(REQUESTS, pack({**header, "id": request_id, "deadline": time.time() + timeout}, body))
        got = self.client.blpop([answer_key(request_id)], timeout=timeout)
        if got is None:
            raise ServingTimeout
        answer, payload = unpack(got[1])
        return int(answer["status"]), payload

    def warm(self, header: dict) -> None:
        """Ask the serving process to load a model now (an endpoint was created or started)."""
        self.client.rpush(REQUESTS, pack({**header, "type": "warm", "id": uuid.uuid4().hex}, b""))

    def record(self, event: dict) -> None:
        """One answered call, for the endpoint's statistics (the serving process writes them)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(EVENTS, json.dumps(event, separators=(",", ":")))
        pipe.ltrim(EVENTS, -EVENTS_KEPT, -1)
        pipe.execute()

    # -- the serving process's side ---------------------------------------------------------------
    def take(self, block: float, gather: float, limit: int) -> list[tuple[dict, bytes]]:
        """Block up to `block` s for a request; then wait `gather` s and take what else has arrived."""
        first = self.client.blpop([REQUESTS], timeout=block)
        if first is None:
            return []
        messages = [first[1]]
        if gather > 0 and not self.client.llen(REQUESTS):
            time.sleep(gather)
        if limit > 1:
            messages += self.client.lpop(REQUESTS, limit - 1) or []
        return [unpack(m) for m in messages]

    def answer(self, answers: list[tuple[str, int, bytes]]) -> None:
        if not answers:
            return
        pipe = self.client.pipeline(transaction=False)
        for request_id, status, body in answers:
            key = answer_key(request_id)
            pipe.rpush(key, pack({"status": status}, body))
            pipe.expire(key, ANSWER_TTL)
        pipe.execute()

    def heartbeat(self, info: dict, ttl: float = 5.0) -> None:
        self.client.set(ALIVE, json.dumps(info), px=int(ttl * 1000))

    def events(self, limit: int = 10_000) -> list[dict]:
        raw = self.client.lpop(EVENTS, limit) or []
        return [json.loads(r) for r in raw]

    def stopping(self) -> None:
        self.client.delete(ALIVE)
