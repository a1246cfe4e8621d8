"""Endpoints on the real stack: many concurrent clients (bounded, loopback) call a real endpoint while a
training job runs on the GPU worker: no errors, every answer equals the evaluation's y', batches are
formed (the server counts them); every bad request through the real HTTP server is a 4xx while a good
client keeps getting answers; a killed model server is restarted by the launcher."""
from __future__ import annotations

import base64
import csv
import io
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from tests.sample_data import digit_images, write_class_zip

pytestmark = pytest.mark.live
CLIENTS = 12
CALLS_PER_CLIENT = 6


def wait_for(check, timeout: float = 180, message: str = ""):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, message
        time.sleep(0.3)
    return result


def finished_job(client, job_id: int, timeout: float = 180) -> dict:
    job = wait_for(lambda: (j := client.get(f"/api/jobs/{job_id}/").json())["state"] not in ("queued", "running") and j,
                   timeout, f"job {job_id} did not finish")
    assert job["state"] == "succeeded", job["message"]
    return job


@pytest.fixture(scope="module")
def served(live_stack, tmp_path_factory):
    """A trained digits classifier behind an endpoint, its validation images and their evaluated y'."""
    from tests.conftest import LiveClient

    tmp = tmp_path_factory.mktemp("served")
    client = LiveClient(live_stack["url"]).sign_up(f"server{os.getpid()}")
    upload = client.upload(write_class_zip(tmp / "d.zip", digit_images(20, 3, size=32)))
    job = client.post("/api/jobs/", json={"plugin": "image_classification", "params": {
        "source": upload["id"], "width": 32, "height": 32, "ratio1": 70, "ratio2": 30, "file2": "valid"}}).json()
    train_id, valid_id = (d["id"] for d in finished_job(client, job["id"])["datasets"])
    project = client.post("/api/projects/", json={"name": "served", "train_dataset": train_id,
                                                  "valid_dataset": valid_id}).json()
    client.patch(f"/api/projects/{project['id']}/", json={"config": {"max_epoch": 2, "batch_size": 16}})
    run = client.post(f"/api/projects/{project['id']}/runs/", json={"plugin": "transfer_learning", "params": {
        "input_size": 32}}).json()
    finished_job(client, run["job"])
    endpoint = client.post("/api/endpoints/", json={"run": run["id"], "name": "digits"}).json()
    rows = client.get(f"/api/datasets/{valid_id}/rows/?limit=100").json()["rows"]
    images = [client.get(f"/api/datasets/{valid_id}/files/{r['cells'][0].removeprefix('./')}").content for r in rows]
    table = list(csv.reader(io.StringIO(client.get(f"/api/runs/{run['id']}/files/output_result.csv").text)))
    scores = np.array([[float(v) for v in row[-3:]] for row in table[1:]])
    assert len(images) == len(scores) == 18
    token = client.post("/api/auth/token/").json()["token"]
    return {"client": client, "endpoint": endpoint, "images": images, "scores": scores, "token": token,
            "project": project, "run": run}


def call(url: str, token: str, images: list[bytes], timeout: float = 60) -> requests.Response:
    body = {"instances": [{"data": base64.b64encode(i).decode()} for i in images]}
    return requests.post(url, json=body, headers={"Authorization": f"Token {token}"}, timeout=timeout)


def right(predictions: list, expected: np.ndarray) -> bool:
    for ranked, row in zip(predictions, expected, strict=True):
        by_label = {r["label"]: r["score"] for r in ranked}
        if not np.allclose([by_label[str(k)] for k in range(3)], row, atol=1e-5):
            return False
    return True


def test_concurrent_clients_during_training_get_right_answers_in_batches(served):
    client, endpoint = served["client"], served["endpoint"]
    # A training job that keeps the GPU worker busy while the clients call (every layer learns).
    client.patch(f"/api/projects/{served['project']['id']}/", json={"config": {"max_epoch": 40, "batch_size": 4}})
    training = client.post(f"/api/projects/{served['project']['id']}/runs/", json={
        "plugin": "transfer_learning", "params": {"input_size": 64, "train_param": "all"}}).json()
    wait_for(lambda: client.get(f"/api/jobs/{training['job']}/").json()["state"] == "running", 60,
             "the training job did not start")
    before = client.get(f"/api/endpoints/{endpoint['id']}/").json()["stats"]
    rng = np.random.default_rng(0)
    plans = [[rng.choice(18, size=int(rng.integers(1, 4)), replace=False).tolist() for _ in range(CALLS_PER_CLIENT)]
             for _ in range(CLIENTS)]
    start = threading.Barrier(CLIENTS)

    def client_calls(plan: list[list[int]]) -> list[tuple[int, bool]]:
        start.wait()
        results = []
        for chosen in plan:
            response = call(endpoint["url"], served["token"], [served["images"][i] for i in chosen])
            ok = response.status_code == 200 and right(response.json()["predictions"], served["scores"][chosen])
            results.append((response.status_code, ok))
        return results

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [r for rs in pool.map(client_calls, plans) for r in rs]
    assert client.get(f"/api/jobs/{training['job']}/").json()["state"] == "running"  # it trained all along
    client.post(f"/api/jobs/{training['job']}/cancel/")
    assert [code for code, _ in results] == [200] * CLIENTS * CALLS_PER_CLIENT
    assert all(ok for _, ok in results), "an answer differs from the evaluation's y'"
    instances = sum(len(chosen) for plan in plans for chosen in plan)
    stats = wait_for(lambda: (s := client.get(f"/api/endpoints/{endpoint['id']}/").json()["stats"])["requests"]
                     >= before["requests"] + len(results) and s, 30, "the statistics were not written")
    batches = stats["batches"] - before["batches"]
    assert stats["instances"] - before["instances"] == instances and stats["errors"] == before["errors"]
    assert stats["largest_batch"] > 3  # more instances than one request holds: requests were batched
    assert batches < len(results), (batches, len(results))  # fewer forward passes than requests
    assert stats["latency_ms"]["p95"] > 0


def sparse_file(path, size: int):
    with open(path, "wb") as handle:
        handle.truncate(size)  # no disk blocks: the bytes are zeros on read
    return path


def test_every_bad_request_is_a_4xx_while_others_are_answered(served, live_client, tmp_path):
    from tests.engine.test_serving import crafted_png

    url, token = served["endpoint"]["url"], served["token"]
    good, stop = [], threading.Event()

    def keep_calling() -> None:
        while not stop.is_set():
            response = call(url, token, [served["images"][0]])
            good.append(response.status_code == 200 and right(response.json()["predictions"], served["scores"][:1]))

    caller = threading.Thread(target=keep_calling)
    caller.start()
    auth = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    encode = base64.b64encode
    bad = {
        "not base64": ({"instances": [{"data": "@@@ not base64 @@@"}]}, 400, "instances[0].data"),
        "not an image": ({"instances": [{"data": encode(b"just some text").decode()}]}, 400, "instances[0].data"),
        "900 megapixels": ({"instances": [{"data": encode(crafted_png(30000, 30000)).decode()}]}, 400,
                           "instances[0].data"),
        "empty instances": ({"instances": []}, 400, "instances"),
        "10,000 instances": ({"instances": [{"data": "AAAA"}] * 10_000}, 400, "instances"),
    }
    try:
        for what, (body, code, field) in bad.items():
            response = requests.post(url, data=json.dumps(body), headers=auth, timeout=60)
            assert response.status_code == code, (what, response.text)
            assert set(response.json()) == {"detail", "errors"} and field in response.json()["errors"], what
        with open(sparse_file(tmp_path / "huge.json", 500 * 1024**2), "rb") as huge:  # a body of 500 MB
            response = requests.post(url, data=huge, headers=auth, timeout=120)
        assert response.status_code == 413 and "body" in response.json()["errors"]
        wrong = requests.post(url, json={"instances": []}, headers={"Authorization": "Token wrong"}, timeout=30)
        assert wrong.status_code == 401 and set(wrong.json()) == {"detail", "errors"}
        other = live_client("intruder")
        theirs = other.post("/api/auth/token/").json()["token"]
        stolen = requests.post(url, json={"instances": [{"data": "AAAA"}]}, headers={"Authorization": f"Token {theirs}"},
                               timeout=30)
        assert stolen.status_code == 404 and stolen.json() == {"detail": "not found", "errors": {}}
        time.sleep(1)
    finally:
        stop.set()
        caller.join(60)
    assert len(good) >= 3 and all(good), good  # answered right all along


def test_a_killed_model_server_is_restarted(served, live_stack):
    ready = json.loads((live_stack["data_dir"] / "ready.json").read_text())
    os.killpg(ready["pids"]["serving"], signal.SIGKILL)

    def answers() -> bool:
        response = call(served["endpoint"]["url"], served["token"], served["images"][:2])
        assert response.status_code in (200, 503, 504), response.text  # 503/504 only while it restarts
        return response.status_code == 200 and right(response.json()["predictions"], served["scores"][:2])

    wait_for(answers, timeout=120, message="the model server did not come back")
    assert "[serving] exited" in (live_stack["data_dir"] / "launcher.log").read_text()
