"""`manage.py runstack`: the one command that runs the studio (see nnc_web.launcher)."""
import os
from pathlib import Path

from django.core.management.base import BaseCommand

from nnc_web import launcher


def web_processes() -> int:
    """One more than the cores (a synchronous view blocks its process while it waits on disk or the
    database), at most 4: on 2 cores, 3 processes gave p95 207 ms at 20 clients (benchmarks/http_load.py)."""
    return int(os.environ.get("NNC_WEB_PROCESSES", 0)) or min(4, (os.cpu_count() or 1) + 1)


class Command(BaseCommand):
    help = "Run NNC Web: embedded Redis (unless REDIS_URL), Dramatiq workers and Daphne."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--worker-processes", type=int, default=1)
        parser.add_argument("--worker-threads", type=int, default=2,
                            help="jobs run at once per process on the cpu queue")
        parser.add_argument("--gpu-worker", choices=["on", "off", "none"], default="on",
                            help="on: a separate one-job-at-a-time worker for the gpu queue; off: the cpu "
                                 "worker takes gpu jobs too; none: gpu jobs run only on `runworker` machines")
        parser.add_argument("--no-workers", action="store_true",
                            help="run no job workers here: jobs run on machines started with `manage.py runworker`")
        parser.add_argument("--web-processes", type=int, default=None,
                            help="Daphne processes sharing the port (default NNC_WEB_PROCESSES, else cores + 1, "
                                 "at most 4)")
        parser.add_argument("--ready-file", type=Path, default=None,
                            help="write a JSON file with the URL once everything answers")

    def handle(self, *args, **options) -> None:
        code = launcher.run(options["host"], options["port"], options["worker_processes"],
                            options["worker_threads"], options["gpu_worker"] == "on", options["ready_file"],
                            gpu_jobs_here=options["gpu_worker"] != "none",
                            out=self.stdout._out,
                            web_processes=options["web_processes"] or web_processes(),
                            workers=not options["no_workers"])
        raise SystemExit(code)
