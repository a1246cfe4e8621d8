"""An in-process model server with the Redis transport's interface, for the API tests (which run
without Redis). Web processes never use it: they hand every call to the serving process."""
from __future__ import annotations

import json
import threading

from nnc_web import config
from nnc_web.engine.serving.batcher import Call, answer_calls
from nnc_web.engine.serving.cache import ModelCache
from nnc_web.serving.stats import StatsBook
from nnc_web.serving.worker import make_cache, serving_device


class InlineTransport:
    def __init__(self, runtime: str = "auto", cache: ModelCache | None = None) -> None:
        self.cache = cache or make_cache(serving_device(), config.data_dir() / "cache" / "serving-onnx", runtime)
        self.book = StatsBook()
        self.lock = threading.Lock()
        self.calls = 0

    def call(self, header: dict, body: bytes, timeout: float) -> tuple[int, bytes]:
        payload = json.loads(body)
        call = Call.from_message({**header, "id": "inline", "instances": payload["instances"],
                                  "parameters": payload.get("parameters") or {}})
        with self.lock:
            self.calls += 1
            answers, forwards = answer_calls([call], self.cache)
            for forward in forwards:
                self.book.add_forward(forward)
        return answers[0].status, json.dumps(answers[0].body).encode()

    def warm(self, header: dict) -> None:
        pass

    def record(self, event: dict) -> None:
        from nnc_web.serving.services import save_tallies

        with self.lock:
            self.book.add_event(event)
            save_tallies(self.book.take())
