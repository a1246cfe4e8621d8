"""Latency from `ctx.log()` to a websocket client of the running studio: p50/p95.

    .venv/bin/python benchmarks/log_latency.py [--lines 300]

Starts the real stack (embedded Redis, worker, Daphne). This process plays the worker: it calls
`JobContext.log()` (store with a sequence number, then push through the Redis channel layer), and a
websocket client connected to Daphne timestamps every line it receives. The baseline, in the same
run, is a bare `group_send` to the same socket (no DB store), so the ratio shows what storing first
costs. Target: p95 under 300 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import percentile  # noqa: E402
from tests.stack import start_stack, stop_stack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.02)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="nnc-latency-"))
    from nnc_web.launcher import free_port

    process, info = start_stack(data_dir, free_port())
    try:
        os.environ.update({"NNC_DATA_DIR": str(data_dir), "REDIS_URL": info["redis_url"],
                           "DJANGO_SETTINGS_MODULE": "nnc_web.settings"})
        import django

        django.setup()
        measure(info["url"], data_dir, args.lines, args.interval)
    finally:
        stop_stack(process)


def measure(url: str, data_dir: Path, lines: int, interval: float) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from websockets.sync.client import connect

    from nnc_web.jobs.models import Job

    user = get_user_model().objects.create_user("bench", password="Bench-Pass-123")
    job = Job.objects.create(owner=user, kind="postprocess", plugin_id="benchmark", state="running")
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    received: dict[str, float] = {}
    done = threading.Event()
    with connect(url.replace("http://", "ws://") + f"ws/jobs/{job.pk}/?after=0",
                 additional_headers={"Cookie": cookie, "Origin": url.rstrip("/")}) as socket:
        sent = send_and_receive(socket, job, data_dir, lines, interval, received, done)
    report(sent, received, lines)


def send_and_receive(socket, job, data_dir: Path, lines: int, interval: float, received: dict,
                     done: threading.Event) -> dict[str, float]:
    """Send `lines` lines through ctx.log(), then as bare group_sends; returns the send times."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from nnc_web.jobs.context import JobContext
    from nnc_web.jobs.events import group_name
    from nnc_web.jobs.models import Job

    def listen() -> None:
        while not done.is_set():
            try:
                message = json.loads(socket.recv(timeout=1))
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001 - socket closed at the end
                return
            now = time.time()
            for event in message.get("events", []):
                line = event["data"].get("line", "")
                received.setdefault(line, now)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.5)
    ctx = JobContext(job, data_dir / "bench-job")
    sent: dict[str, float] = {}
    for i in range(lines):
        text = f"ours {i}"
        sent[text] = time.time()
        ctx.log(text)
        time.sleep(interval)
    layer = get_channel_layer()
    seq = Job.objects.get(pk=job.pk).last_seq
    for i in range(lines):  # baseline: the same push without storing the event first
        seq += 1
        text = f"bare {i}"
        sent[text] = time.time()
        async_to_sync(layer.group_send)(group_name(job.pk), {"type": "job.events", "events": [
            {"seq": seq, "kind": "log", "data": {"line": text}, "ts": sent[text]}]})
        time.sleep(interval)
    deadline = time.time() + 10
    while len(received) < 2 * lines and time.time() < deadline:
        time.sleep(0.05)
    done.set()
    listener.join()
    return sent


def report(sent: dict[str, float], received: dict[str, float], lines: int) -> None:
    p95 = {}
    for name in ("ours", "bare"):
        latencies = [1000 * (received[t] - sent[t]) for t in sent if t.startswith(name) and t in received]
        p95[name] = percentile(latencies, 0.95)
        print(f"RESULT {name}_lines_received={len(latencies)} missing={lines - len(latencies)}")
        print(f"RESULT {name}_p50_ms={statistics.median(latencies):.1f}")
        print(f"RESULT {name}_p95_ms={p95[name]:.1f}")
        print(f"RESULT {name}_max_ms={max(latencies):.1f}")
    print(f"RESULT p95_ratio_ours_over_bare={p95['ours'] / p95['bare']:.2f}")


if __name__ == "__main__":
    main()
