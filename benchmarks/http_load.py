"""Twenty concurrent clients on the dataset rows page and the job list of a real studio
(`manage.py runstack`: Daphne, workers, embedded Valkey), with one web process and with several
sharing the port, same run. Loopback only, bounded in time.

    .venv/bin/python benchmarks/http_load.py [--clients 20] [--seconds 15] [--processes 2]

Prints p50/p95 latency and requests/s for each, the ratio of requests/s last (target: p95 <= 250 ms
and >= 1.8x the requests/s of one process at 20 clients on 2 cores).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import percentile  # noqa: E402
from nnc_web.launcher import free_port  # noqa: E402
from tests.conftest import LiveClient  # noqa: E402
from tests.sample_data import digit_images, write_class_zip  # noqa: E402
from tests.stack import start_stack, stop_stack  # noqa: E402


def prepare(client: LiveClient, folder: Path) -> list[str]:
    """A dataset of 240 rows and a few finished jobs; the URLs the clients ask for."""
    upload = client.upload(write_class_zip(folder / "d.zip", digit_images(80, 3, size=16)))
    jobs = [client.post("/api/jobs/", json={"plugin": "image_classification", "params": {
        "source": upload["id"], "width": 16, "height": 16}}).json() for _ in range(3)]
    deadline = time.monotonic() + 120
    while any(client.get(f"/api/jobs/{j['id']}/").json()["state"] != "succeeded" for j in jobs):
        assert time.monotonic() < deadline, "the datasets were not made"
        time.sleep(0.5)
    dataset = client.get("/api/datasets/").json()["results"][0]["id"]
    return [f"/api/datasets/{dataset}/rows/?start=0&limit=50", "/api/jobs/"]


def load(base: str, cookies, urls: list[str], clients: int, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def one_client(number: int) -> None:
        import requests

        session = requests.Session()
        session.cookies.update(cookies)
        mine, turn = [], number
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            response = session.get(base + urls[turn % len(urls)], timeout=30)
            mine.append(time.perf_counter() - started)
            turn += 1
            if response.status_code != 200:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=one_client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0]


def measure(processes: int, clients: int, seconds: float) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"nnc-load-{processes}-"))
    process, info = start_stack(folder, free_port(), extra_env={"NNC_WEB_PROCESSES": str(processes)})
    try:
        client = LiveClient(info["url"]).sign_up("loader")
        urls = prepare(client, folder)
        base = info["url"].rstrip("/")
        load(base, client.cookies, urls, clients, 2.0)  # warm-up: imports, caches, connections
        latencies, errors = load(base, client.cookies, urls, clients, seconds)
    finally:
        stop_stack(process)
    return {"p50_ms": 1000 * percentile(latencies, 0.5), "p95_ms": 1000 * percentile(latencies, 0.95),
            "rps": len(latencies) / seconds, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    one = measure(1, args.clients, args.seconds)
    many = measure(args.processes, args.clients, args.seconds)
    for name, result in (("one_process", one), (f"{args.processes}_processes", many)):
        for key, value in result.items():
            print(f"RESULT {name}_{key}={value:.1f}" if isinstance(value, float) else f"RESULT {name}_{key}={value}")
    print(f"RESULT rps_ratio={many['rps'] / one['rps']:.2f}")


if __name__ == "__main__":
    main()
