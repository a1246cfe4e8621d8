"""Endpoint serving on a real studio (`manage.py runstack`), same run, loopback: requests/s and p50/p95
latency for 1, 8 and 32 concurrent clients, ours (the model server: cached model, batching, the runtime
it measured) against a naive baseline that loads nothing in advance and runs PyTorch eager per request
(a threaded HTTP server that loads the bundle and runs the model for each call). Then the bare model
forward + decode time of one image, and ONNX Runtime against PyTorch eager on CPU for
EfficientNet-Lite0 at 224 px.

    .venv/bin/python benchmarks/serving.py [--seconds 10] [--clients 1,8,32]

Targets: >= 3x the baseline's requests/s at 32 clients; p95 at 1 client <= 1.2x the bare forward + decode.
The cores are shared with whatever else runs (the load average is printed): a server with more busy
threads takes a larger share of them, so the CPU time each server spends per request (ours: the model
server, the web processes and Redis) is printed too, and its ratio.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.stats import percentile  # noqa: E402
from nnc_web.launcher import free_port  # noqa: E402
from tests.conftest import LiveClient  # noqa: E402
from tests.sample_data import digit_images, photo, write_class_zip  # noqa: E402
from tests.stack import start_stack, stop_stack  # noqa: E402

SIZE = 224


# -- the naive baseline -----------------------------------------------------------------------------
def naive_answer(bundle: Path, body: dict) -> list:
    """What a first serving script does: load the model for the request, run it eagerly, answer."""
    import torch
    from PIL import Image

    from nnc_web.engine.training.bundle import load_bundle
    from nnc_web.engine.training.trainer import transforms_for

    model, manifest = load_bundle(bundle)
    transform = transforms_for(manifest["backbone"], manifest["input_size"], [])
    images = [transform(Image.open(io.BytesIO(base64.b64decode(i["data"]))).convert("RGB")) for i in body["instances"]]
    with torch.no_grad():
        scores = torch.softmax(model(torch.stack(images)), dim=1)
    names = manifest["class_names"]
    return [[{"label": names[k], "score": float(row[k])} for k in row.argsort(descending=True).tolist()]
            for row in scores]


def serve_baseline(port: int, bundle: Path) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = json.dumps({"predictions": naive_answer(bundle, body)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # naive, not broken: 32 clients must not be refused at connect

    Server(("127.0.0.1", port), Handler).serve_forever()


# -- the load -----------------------------------------------------------------------------------------
def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes used so far (every thread): the machine's cores are shared
    with other work, so requests per CPU-second compares the servers where requests/s cannot."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def load(url: str, headers: dict, body: bytes, clients: int, seconds: float, pids: list[int] | None = None) -> dict:
    import requests

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def one_client() -> None:
        session = requests.Session()
        mine = []
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                ok = session.post(url, data=body, headers=headers, timeout=300).status_code == 200
            except requests.RequestException:
                ok = False
            mine.append(time.perf_counter() - started)
            if not ok:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=one_client) for _ in range(clients)]
    cpu_before = cpu_seconds(pids) if pids else 0.0
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(pids) - cpu_before if pids else 0.0
    return {"rps": len(latencies) / elapsed, "p50_ms": 1000 * percentile(latencies, 0.5),
            "p95_ms": 1000 * percentile(latencies, 0.95), "requests": len(latencies), "errors": errors[0],
            "cpu_ms_per_request": 1000 * cpu / max(1, len(latencies))}


def wait_until_up(url: str, headers: dict, body: bytes, timeout: float = 120) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.post(url, data=body, headers=headers, timeout=300).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.5)


def wait_job(client: LiveClient, job_id: int) -> dict:
    deadline = time.monotonic() + 600
    while (job := client.get(f"/api/jobs/{job_id}/").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.5)
    assert job["state"] == "succeeded", job["message"]
    return job


def trained_run(client: LiveClient, folder: Path) -> dict:
    """Digits at 224 px, a transfer-learning run of EfficientNet-Lite0 (one epoch on cached features)."""
    upload = client.upload(write_class_zip(folder / "d.zip", digit_images(20, 3, size=SIZE)))
    job = client.post("/api/jobs/", json={"plugin": "image_classification", "params": {
        "source": upload["id"], "width": SIZE, "height": SIZE, "ratio1": 80, "ratio2": 20, "file2": "valid"}}).json()
    train_id, valid_id = (d["id"] for d in wait_job(client, job["id"])["datasets"])
    project = client.post("/api/projects/", json={"name": "bench", "train_dataset": train_id,
                                                  "valid_dataset": valid_id}).json()
    client.patch(f"/api/projects/{project['id']}/", json={"config": {"max_epoch": 1}})
    run = client.post(f"/api/projects/{project['id']}/runs/", json={"plugin": "transfer_learning", "params": {
        "input_size": SIZE}}).json()
    wait_job(client, run["job"])
    return run


def bare_forward_and_decode(bundle: Path, data: str, runtime: str, repeats: int = 30) -> tuple[float, float]:
    """p50 and p95 of one image's base64 decode + preprocessing + forward on the server's runtime, in
    process (ms)."""
    from nnc_web.engine.serving.instances import Limits, Parameters
    from nnc_web.engine.serving.predictor import load_predictor

    predictor = load_predictor(bundle, "cpu", runtime)
    instance, parameters, limits = {"data": data}, Parameters(), Limits()
    times = []
    for _ in range(repeats + 3):
        started = time.perf_counter()
        predictor.forward([predictor.prepare(instance, "instances[0]", parameters, limits)])
        times.append(time.perf_counter() - started)
    return 1000 * percentile(times[3:], 0.5), 1000 * percentile(times[3:], 0.95)


def runtimes_at_224(repeats: int = 10) -> dict:
    """EfficientNet-Lite0 (ImageNet weights) at 224 px: PyTorch eager vs ONNX Runtime, batch 1 and 8 (ms)."""
    import numpy as np
    import torch

    from nnc_web.engine.serving.runtime import OnnxRunner, TorchRunner, export_onnx
    from nnc_web.engine.training.model import TransferClassifier

    model = TransferClassifier("efficientnet_lite0", 1000).eval()
    path = Path(tempfile.mkdtemp(prefix="nnc-bench-onnx-")) / "lite0.onnx"
    export_onnx(model, torch.zeros(1, 3, SIZE, SIZE), path)
    runners = {"torch": TorchRunner(model, torch.device("cpu")), "onnxruntime": OnnxRunner(path)}
    result = {}
    for batch in (1, 8):
        images = torch.rand(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
        for name, run in runners.items():
            run(images)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                run(images)
                times.append(time.perf_counter() - started)
            result[f"{name}_batch{batch}_ms"] = 1000 * float(np.median(times))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--baseline-server", nargs=2, metavar=("PORT", "BUNDLE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        serve_baseline(int(args.baseline_server[0]), Path(args.baseline_server[1]))
        return
    clients = [int(c) for c in args.clients.split(",")]
    print(f"RESULT load_average_before={os.getloadavg()[0]:.1f} cores={os.cpu_count()}")
    folder = Path(tempfile.mkdtemp(prefix="nnc-serving-bench-"))
    process, info = start_stack(folder, free_port())
    baseline = None
    try:
        client = LiveClient(info["url"]).sign_up("bencher")
        run = trained_run(client, folder)
        endpoint = client.post("/api/endpoints/", json={"run": run["id"], "name": "bench",
                                                        "rate_per_minute": 1_000_000}).json()
        token = client.post("/api/auth/token/").json()["token"]
        bundle = next(folder.glob(f"users/*/projects/*/results/{run['id']}/model"))
        buffer = io.BytesIO()
        photo("chelsea").convert("RGB").save(buffer, "JPEG", quality=90)  # a real photo, 451 x 300
        data = base64.b64encode(buffer.getvalue()).decode()
        body = json.dumps({"instances": [{"data": data}]}).encode()
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        port = free_port()
        baseline = subprocess.Popen([sys.executable, __file__, "--baseline-server", str(port), str(bundle)])
        base_url = f"http://127.0.0.1:{port}/"
        load(endpoint["url"], headers, body, 1, 3.0)  # warm-up: the model is loaded, the runtime measured
        wait_until_up(base_url, headers, body)  # and the baseline has imported what it needs
        runtime = client.get(f"/api/endpoints/{endpoint['id']}/").json()["stats"]["runtime"].get("runtime", "torch")
        bare = bare_forward_and_decode(bundle, data, runtime)  # in this process, beside the idle studio
        ours_pids = [pid for name, pid in info["pids"].items() if name == "serving" or name.startswith(("daphne", "redis"))]
        results = {}
        for count in clients:
            results[f"ours_{count}"] = load(endpoint["url"], headers, body, count, args.seconds, ours_pids)
            results[f"baseline_{count}"] = load(base_url, headers, body, count, args.seconds, [baseline.pid])
        stats = client.get(f"/api/endpoints/{endpoint['id']}/").json()["stats"]
    finally:
        if baseline is not None:
            baseline.kill()
        stop_stack(process)
    for name, result in results.items():
        for key in ("rps", "p50_ms", "p95_ms", "cpu_ms_per_request"):
            print(f"RESULT {name}_clients_{key}={result[key]:.2f}")
        print(f"RESULT {name}_clients_errors={result['errors']}")
    print(f"RESULT server_runtime={runtime}")
    for key in ("batches", "instances", "largest_batch"):
        print(f"RESULT server_{key}={stats[key]}")
    print(f"RESULT bare_forward_decode_p50_ms={bare[0]:.2f}")
    print(f"RESULT bare_forward_decode_p95_ms={bare[1]:.2f}")
    for key, value in runtimes_at_224().items():
        print(f"RESULT lite0_224_{key}={value:.2f}")
    print(f"RESULT load_average_after={os.getloadavg()[0]:.1f}")
    if 1 in clients:
        print(f"RESULT p95_1_client_over_bare_p95={results['ours_1']['p95_ms'] / bare[1]:.2f}")
        print(f"RESULT p95_1_client_over_bare_p50={results['ours_1']['p95_ms'] / bare[0]:.2f}")
    top = max(clients)
    ours, theirs = results[f"ours_{top}"], results[f"baseline_{top}"]
    print(f"RESULT cpu_per_request_ratio_{top}_clients={theirs['cpu_ms_per_request'] / ours['cpu_ms_per_request']:.2f}")
    print(f"RESULT rps_ratio_{top}_clients={ours['rps'] / theirs['rps']:.2f}")


if __name__ == "__main__":
    main()
