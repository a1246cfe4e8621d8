"""`manage.py runworker`: Dramatiq workers alone (no web server, no broker), for a machine that only
runs jobs. They reach the studio through the shared `REDIS_URL`, `DATABASE_URL` and `NNC_DATA_DIR`,
beat their jobs' heartbeats like the launcher's workers, die with this process (PR_SET_PDEATHSIG), are
restarted when they die (bounded), and a job whose worker died is reaped as `worker lost`.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import IO

from nnc_web import config
from nnc_web.launcher import Stack, reap_interval, redis_ping


def worker_commands(queues: list[str], processes: int, threads: int, gpu_ids: list[str] | None,
                    base_env: dict) -> list[tuple[str, list[str], dict]]:
    """(name, argv, env) of each worker to start: one per GPU id when `gpu_ids` is given (that GPU
    alone visible to it, one job at a time on it), else one worker with `processes` x `threads`."""
    worker = [sys.executable, "-m", "dramatiq", "nnc_web.jobs.tasks", "--worker-shutdown-timeout", "5000"]
    # At most one message per thread: a job waiting behind a busy worker stays in the queue, where
    # another machine's worker can take it.
    if gpu_ids:
        return [(f"worker-gpu{gpu}", [*worker, "--processes", "1", "--threads", "1", "--queues", *queues],
                 dict(base_env, CUDA_VISIBLE_DEVICES=gpu, dramatiq_queue_prefetch="1")) for gpu in gpu_ids]
    return [("worker", [*worker, "--processes", str(processes), "--threads", str(threads), "--queues", *queues],
             dict(base_env, dramatiq_queue_prefetch=str(threads)))]


def run_workers(queues: list[str], processes: int, threads: int, gpu_ids: list[str] | None,
                out: IO[str] = sys.stdout, ready_file: Path | None = None) -> int:
    from nnc_web.jobs.services import reap_lost_jobs

    url = config.redis_url()
    if not url:
        out.write("runworker needs REDIS_URL: the studio's broker (see README, More machines)\n")
        return 2
    if not redis_ping(url, timeout=3):
        out.write(f"REDIS_URL={url} does not answer PING\n")
        return 2
    data_dir = config.data_dir()
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack("127.0.0.1", 0, log_dir, out)
    signal.signal(signal.SIGTERM, lambda *_: stack.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stack.stopping.set())
    env = dict(os.environ, REDIS_URL=url, PYTHONUNBUFFERED="1", NNC_DATA_DIR=str(data_dir),
               DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "nnc_web.settings"),
               NNC_WORKER_HOST=os.environ.get("NNC_WORKER_HOST") or socket.gethostname())
    for name, args, child_env in worker_commands(queues, processes, threads, gpu_ids, env):
        stack.spawn(name, args, child_env, marker="ready for action")
    code = 0
    try:
        stack.wait_workers()
        out.write(f"workers ready on {env['NNC_WORKER_HOST']} for queues {', '.join(queues)}"
                  f"{' on GPUs ' + ','.join(gpu_ids) if gpu_ids else ''}\n")
        out.flush()
        if ready_file is not None:
            ready_file.write_text(json.dumps({"host": env["NNC_WORKER_HOST"],
                                              "pids": {c.name: c.process.pid for c in stack.children}}))
        next_reap = 0.0
        while not stack.stopping.wait(0.5):
            if not stack.restart_dead():
                code = 1
                break
            if time.monotonic() >= next_reap:  # every machine reaps: the update is conditional
                next_reap = time.monotonic() + reap_interval()
                try:
                    reap_lost_jobs()
                except Exception as exc:  # noqa: BLE001 - a busy database must not stop the workers
                    out.write(f"reaper: {exc}\n")
    except RuntimeError as exc:
        out.write(f"{exc}\n")
        code = 1
    finally:
        out.write("stopping...\n")
        stack.stop()
        out.write("stopped.\n")
    return code
