"""`manage.py runworker`: only Dramatiq workers, for a machine that runs jobs (see nnc_web.workers)."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from nnc_web import workers

QUEUES = ("cpu", "gpu")


class Command(BaseCommand):
    help = ("Run only job workers (no web server, no broker) against the studio's REDIS_URL, DATABASE_URL "
            "and NNC_DATA_DIR: how a second machine joins the studio.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--queues", nargs="+", default=list(QUEUES), help="queues to take jobs from")
        parser.add_argument("--processes", type=int, default=1)
        parser.add_argument("--threads", type=int, default=1, help="jobs run at once per process")
        parser.add_argument("--gpu-ids", default="",
                            help="comma-separated CUDA device ids: one one-job-at-a-time worker per GPU, "
                                 "each seeing only its device")
        parser.add_argument("--ready-file", type=Path, default=None,
                            help="write a JSON file with the worker processes once they are ready")

    def handle(self, *args, **options) -> None:
        unknown = sorted(set(options["queues"]) - set(QUEUES))
        if unknown:
            raise CommandError(f"unknown queue {', '.join(unknown)}: choose from {', '.join(QUEUES)}")
        if options["processes"] < 1 or options["threads"] < 1:
            raise CommandError("--processes and --threads must be at least 1")
        gpu_ids = [g.strip() for g in options["gpu_ids"].split(",") if g.strip()]
        if any(not g.isdigit() for g in gpu_ids):
            raise CommandError("--gpu-ids takes device numbers, e.g. --gpu-ids 0,1")
        code = workers.run_workers(options["queues"], options["processes"], options["threads"], gpu_ids or None,
                                   out=self.stdout._out, ready_file=options["ready_file"])
        raise SystemExit(code)
