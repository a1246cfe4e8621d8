"""`manage.py serve_models`: the serving process (the launcher starts and restarts it)."""
import os
import signal
import threading

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from nnc_web import config
from nnc_web.serving import conf
from nnc_web.serving.services import save_tallies
from nnc_web.serving.transport import RedisTransport
from nnc_web.serving.worker import Server, make_cache, serving_device


class Command(BaseCommand):
    help = "Answer the studio's endpoint calls: models cached, requests batched (see nnc_web.serving.worker)."

    def handle(self, *args, **options) -> None:
        url = config.redis_url()
        if not url:
            raise CommandError("no broker: set REDIS_URL or start the studio (manage.py runstack)")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        device = serving_device()
        server = Server(RedisTransport(url), make_cache(device, config.data_dir() / "cache" / "serving-onnx"),
                        save_tallies)
        self.stdout.write(f"serving ready on {device} (runtime {conf.RUNTIME}, batch wait {conf.BATCH_WAIT_MS:g} ms, "
                          f"{conf.CACHE_MODELS} models cached)")
        self.stdout.flush()
        server.serve(stop)  # returns with the statistics written and the heartbeat removed
        # Nothing is left to save: skip the interpreter's teardown of torch & co (seconds on a busy
        # machine), so a stopping studio is not kept waiting.
        connections.close_all()
        self.stdout.write("serving stopped")
        self.stdout.flush()
        os._exit(0)
