"""The serving process's loop (`manage.py serve_models`): take the requests waiting on Redis, answer
them in batches through the model cache, push the answers, keep the heartbeat and write the
statistics now and then. One process owns the models; the web processes and the training workers
never load them, so a training job cannot block an inference call (on a GPU both run at once)."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import torch

from nnc_web.engine.serving.batcher import Call, answer_calls
from nnc_web.engine.serving.cache import ModelCache
from nnc_web.engine.serving.predictor import load_predictor
from nnc_web.serving import conf
from nnc_web.serving.stats import StatsBook, Tally
from nnc_web.serving.transport import RedisTransport

log = logging.getLogger("nnc_web.serving")


def serving_device(name: str = conf.DEVICE) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_cache(device: torch.device, onnx_dir: Path | None, runtime: str = conf.RUNTIME,
               capacity: int = conf.CACHE_MODELS) -> ModelCache:
    return ModelCache(lambda folder: load_predictor(folder, device, runtime, onnx_dir), capacity)


class Server:
    def __init__(self, transport: RedisTransport, cache: ModelCache, save: Callable[[dict[int, Tally]], None],
                 gather_ms: float = conf.BATCH_WAIT_MS, max_requests: int = conf.MAX_REQUESTS,
                 threads: int = conf.DECODE_THREADS) -> None:
        self.transport, self.cache, self.save = transport, cache, save
        self.gather, self.max_requests = gather_ms / 1000, max_requests
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")
        self.book = StatsBook()
        self.next_flush = 0.0

    def beat(self) -> None:
        self.transport.heartbeat({"pid": os.getpid(), "models": [str(p) for p in self.cache.held()],
                                  "at": time.time()})

    def once(self, block: float = 0.5) -> int:
        """Take and answer what is waiting; returns the number of requests answered."""
        messages = self.transport.take(block, self.gather, self.max_requests)
        calls = []
        for header, body in messages:
            if header.get("type") == "warm":
                self._warm(header)
                continue
            try:
                payload = json.loads(body)
                calls.append(Call.from_message({**header, "instances": payload["instances"],
                                                "parameters": payload.get("parameters") or {}}))
            except (ValueError, KeyError, TypeError):
                self.transport.answer([(header["id"], 400, json.dumps(
                    {"detail": "body: not a request the model server can read", "errors": {}}).encode())])
        if calls:
            answers, forwards = answer_calls(calls, self.cache, self.pool)
            self.transport.answer([(a.id, a.status, json.dumps(a.body).encode()) for a in answers])
            for forward in forwards:
                self.book.add_forward(forward)
        return len(calls)

    def _warm(self, header: dict) -> None:
        try:
            predictor = self.cache.get(Path(header["bundle"]))
            if header.get("endpoint") is not None:
                self.book.add_runtime(header["endpoint"], predictor.runtime, predictor.runtime_report)
        except Exception as exc:  # noqa: BLE001 - a call will report the problem to its client
            log.warning("could not load %s: %s", header.get("bundle"), exc)

    def _beating(self, stop: threading.Event) -> None:
        # Its own thread: loading a model (an ONNX export, the runtime measurement) takes seconds, and
        # the web processes must not think the server is gone meanwhile.
        while not stop.wait(1.0):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - Redis restarting: the next beat tries again
                log.warning("heartbeat failed")

    def housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self.next_flush:
            self.next_flush = now + conf.STATS_SECONDS
            for event in self.transport.events():
                try:
                    self.book.add_event(event)
                except (KeyError, TypeError, ValueError):
                    continue
            tallies = self.book.take()
            if tallies:
                try:
                    self.save(tallies)
                except Exception:  # noqa: BLE001 - a busy database must not stop the answers
                    log.exception("writing endpoint statistics failed")

    def serve(self, stop: threading.Event) -> None:
        self.beat()
        threading.Thread(target=self._beating, args=(stop,), daemon=True, name="heartbeat").start()
        while not stop.is_set():
            try:
                self.once()
            except redis.RedisError as exc:  # the broker restarting: wait for it, keep the models
                log.warning("Redis: %s", exc)
                stop.wait(0.5)
            self.housekeeping()
        self.transport.stopping()
        self.housekeeping()
