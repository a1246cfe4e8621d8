"""Integration with the real stack: embedded Redis, a Dramatiq worker process and Daphne."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from nnc_web.launcher import free_port
from tests.sample_data import digit_images, write_class_zip
from tests.stack import start_stack, stop_stack

pytestmark = pytest.mark.live
FINAL = {"succeeded", "failed", "cancelled"}


def open_socket(client, job_id: int, after: int):
    url = client.base.replace("http://", "ws://") + f"/ws/jobs/{job_id}/?after={after}"
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    return connect(url, additional_headers={"Cookie": cookie, "Origin": client.base}, open_timeout=10)


def read_events(socket, until_final: bool, limit: int | None = None) -> list[dict]:
    events: list[dict] = []
    while True:
        message = json.loads(socket.recv(timeout=60))
        if message["type"] != "events":
            continue
        events.extend(message["events"])
        if limit is not None and len(events) >= limit:
            return events
        if until_final and any(e["kind"] == "state" and e["data"]["state"] in FINAL for e in events):
            return events


def queue_digits_job(client, tmp_path, per_class: int = 150, classes: int = 4, output: int = 96) -> int:
    archive = write_class_zip(tmp_path / "digits.zip", digit_images(per_class, classes, size=64),
                              extra={"0/broken.png": b"nope"})
    upload = client.upload(archive)
    response = client.post("/api/jobs/", json={"plugin": "image_classification", "params": {
        "source": upload["id"], "width": output, "height": output, "ratio1": 80, "ratio2": 20, "file2": "valid"}})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_worker_events_reach_the_websocket_in_order_across_a_reconnect(live_client, tmp_path):
    client = live_client("ws")
    job_id = queue_digits_job(client, tmp_path)
    with open_socket(client, job_id, after=0) as socket:
        first = read_events(socket, until_final=False, limit=4)
    resume_after = first[-1]["seq"]
    time.sleep(0.3)  # events keep arriving while nobody listens
    with open_socket(client, job_id, after=resume_after) as socket:
        rest = read_events(socket, until_final=True)
    seqs = [e["seq"] for e in first + rest]
    assert seqs == list(range(1, len(seqs) + 1)), "every event once, in order, none lost"
    stored = client.get(f"/api/jobs/{job_id}/events/").json()["events"]
    assert [e["seq"] for e in stored] == seqs
    lines = [e["data"]["line"] for e in first + rest if e["kind"] == "log"]
    assert lines[-1] == "worker done"
    assert "skipped 0/broken.png: not a readable image" in lines
    assert "converted 600 of 601 images (1 skipped)" in lines
    progress = [e["data"] for e in first + rest if e["kind"] == "progress"]
    assert progress[-1] == {"done": 601, "total": 601} and len(progress) >= 2
    job = client.get(f"/api/jobs/{job_id}/").json()
    assert job["state"] == "succeeded" and [d["name"] for d in job["datasets"]] == ["train", "valid"]
    rows = {d["name"]: d["rows"] for d in client.get("/api/datasets/").json()["results"]}
    assert rows == {"train": 480, "valid": 120}


def test_one_request_upload_for_scripts(live_client, tmp_path):
    client = live_client("curl")
    archive = write_class_zip(tmp_path / "small.zip", digit_images(3, 2))
    response = client.post("/api/uploads/?filename=small.zip", data=archive.read_bytes(),
                           headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 201 and response.json()["state"] == "ready"


def test_websocket_refuses_other_users_and_anonymous(live_client, tmp_path):
    owner, other = live_client("own"), live_client("oth")
    job_id = queue_digits_job(owner, tmp_path, per_class=5)
    with open_socket(other, job_id, after=0) as socket:
        with pytest.raises(Exception) as closed:
            socket.recv(timeout=10)
        assert closed.value.rcvd.code == 4404
    anonymous = type(owner)(owner.base)
    with open_socket(anonymous, job_id, after=0) as socket:
        with pytest.raises(Exception) as closed:
            socket.recv(timeout=10)
        assert closed.value.rcvd.code == 4401


def test_cancel_a_running_conversion(live_client, tmp_path):
    client = live_client("cancel")
    # every digit scikit-learn has (1,797), shaped to 256 px: several seconds of work on 2 cores
    job_id = queue_digits_job(client, tmp_path, per_class=200, classes=10, output=256)
    deadline = time.monotonic() + 60
    while client.get(f"/api/jobs/{job_id}/").json()["progress_done"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.post(f"/api/jobs/{job_id}/cancel/").status_code == 200
    while (job := client.get(f"/api/jobs/{job_id}/").json())["state"] not in FINAL:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert job["state"] == "cancelled" and job["progress_done"] < job["progress_total"]
    assert job["datasets"] == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (the launcher's children, their workers, pools and servers)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            todo.extend(children - found)
            found |= children
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
    except OSError:
        return "?"


def assert_none_left(pids: set[int], timeout: float = 20) -> None:
    """No process is left behind (the children die with their parent, however it ended)."""
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {pid: _command(pid) for pid in pids if _alive(pid)}
    assert not left, left


def test_run_plugin_wait_uses_the_running_studio(live_stack, live_client, tmp_path):
    import subprocess
    import sys

    from tests.stack import ROOT

    client = live_client("cli")
    username = client.get("/api/auth/me/").json()["user"]["username"]
    archive = write_class_zip(tmp_path / "cli.zip", digit_images(8, 2))
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DRAMATIQ_BROKER")}
    env.update(DJANGO_SETTINGS_MODULE="nnc_web.settings", NNC_DATA_DIR=str(live_stack["data_dir"]),
               DATABASE_URL=live_stack["database_url"])
    result = subprocess.run(
        [sys.executable, "manage.py", "run_plugin", "image_classification", "--user", username, "--wait",
         "--param", f"source={archive}", "--param", "width=8", "--param", "height=8",
         "--param", "ratio1=50", "--param", "ratio2=50"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("job ") and "worker done" in lines
    ids = [int(x) for x in lines[-1].split()]
    names = {d["id"]: d["name"] for d in client.get("/api/datasets/").json()["results"]}
    assert [names[i] for i in ids] == ["train", "test"]
    failing = subprocess.run(
        [sys.executable, "manage.py", "run_plugin", "image_classification", "--user", username, "--wait",
         "--param", f"source={tmp_path}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert failing.returncode != 0 and "no images found" in failing.stderr


def wait_for(check, timeout: float = 120, message: str = ""):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, message
        time.sleep(0.3)
    return result


def test_killed_worker_marks_the_run_lost_and_it_resumes_from_the_checkpoint(live_stack, live_client, tmp_path):
    client = live_client("killer")
    upload = client.upload(write_class_zip(tmp_path / "d.zip", digit_images(20, 3, size=32)))
    job = client.post("/api/jobs/", json={"plugin": "image_classification", "params": {
        "source": upload["id"], "width": 32, "height": 32, "ratio1": 70, "ratio2": 30, "file2": "valid"}}).json()
    job = wait_for(lambda: (j := client.get(f"/api/jobs/{job['id']}/").json())["state"] == "succeeded" and j)
    train_id, valid_id = (d["id"] for d in job["datasets"])
    project = client.post("/api/projects/", json={"name": "resilient", "train_dataset": train_id,
                                                  "valid_dataset": valid_id}).json()
    client.patch(f"/api/projects/{project['id']}/", json={"config": {"max_epoch": 6, "batch_size": 8}})
    run = client.post(f"/api/projects/{project['id']}/runs/", json={"plugin": "transfer_learning", "params": {
        "train_param": "all", "input_size": 32}}).json()

    def epoch_logged(n):
        events = client.get(f"/api/jobs/{run['job']}/events/").json()["events"]
        return any(e["kind"] == "log" and e["data"]["line"].startswith(f"epoch {n}/6") for e in events)

    wait_for(lambda: epoch_logged(2), message="training never reached epoch 2")
    worker = json.loads((live_stack["data_dir"] / "ready.json").read_text())["pids"]["worker-gpu"]
    os.killpg(worker, signal.SIGKILL)  # the training worker dies with its children, mid-run
    lost = wait_for(lambda: (j := client.get(f"/api/jobs/{run['job']}/").json())["state"] != "running" and j,
                    timeout=60, message="the reaper never marked the job lost")
    assert (lost["state"], lost["message"]) == ("failed", "worker lost")
    resumed = client.post(f"/api/runs/{run['id']}/resume/")
    assert resumed.status_code == 200, resumed.text
    new_job = resumed.json()["job"]
    finished = wait_for(lambda: (r := client.get(f"/api/runs/{run['id']}/").json())["state"] in FINAL and r,
                        timeout=180, message="the resumed run did not finish (was the worker restarted?)")
    assert finished["state"] == "succeeded"
    assert [h["epoch"] for h in finished["history"]] == [1, 2, 3, 4, 5, 6]
    log = [e["data"]["line"] for e in client.get(f"/api/jobs/{new_job}/events/").json()["events"]
           if e["kind"] == "log"]
    assert any(line.startswith("resuming after epoch") for line in log) and log[-1] == "worker done"
    # the resumed model's accuracy is the one its evaluation table shows (misclassified rows counted there)
    total = client.get(f"/api/runs/{run['id']}/table/?limit=1").json()["total"]
    wrong = client.get(f"/api/runs/{run['id']}/table/?misclassified=1&limit=1").json()["total"]
    assert total == 18 and finished["metrics"]["accuracy"] == pytest.approx((total - wrong) / total)


def crash_broker_and_web_server_then_convert(process, info: dict, client, data_dir: Path) -> None:
    """SIGKILL the broker, then a web server: the launcher restarts both (the broker on its port) and the
    workers take jobs again."""
    import requests

    from nnc_web.launcher import redis_ping

    os.kill(info["pids"]["redis"], signal.SIGKILL)
    wait_for(lambda: "[redis] exited" in (data_dir / "launcher.log").read_text(), timeout=30,
             message="the launcher did not notice the broker died")
    wait_for(lambda: redis_ping(info["redis_url"]), timeout=30, message="redis did not come back on its port")
    os.kill(info["pids"]["daphne"], signal.SIGKILL)
    time.sleep(1)

    def healthy() -> bool:
        try:
            return requests.get(info["url"] + "healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_for(healthy, timeout=60, message="the web server was not restarted")
    assert process.poll() is None  # the studio kept running
    upload = client.upload(write_class_zip(data_dir / "after-crash.zip", digit_images(8, 2)))
    job = client.post("/api/jobs/", json={"plugin": "image_classification", "params": {
        "source": upload["id"], "width": 8, "height": 8}}).json()
    wait_for(lambda: client.get(f"/api/jobs/{job['id']}/").json()["state"] == "succeeded", timeout=60,
             message="the workers did not take jobs after the broker came back")


def test_a_studio_killed_mid_run_restarts_clean_and_survives_its_broker_and_web_server_crashing(tmp_path):
    """SIGKILL the launcher (web, broker and workers die with it) while one run trains and a second waits
    in the single-threaded gpu queue; after a restart the first is `worker lost` and resumable, the second
    runs: nothing is left `running` or `queued` for ever. The restarted studio then loses its broker and a
    web server and goes on; Ctrl-C leaves no process behind (one studio start serves both stories)."""
    from tests.conftest import LiveClient

    grace = {"NNC_HEARTBEAT_GRACE_SECONDS": "3", "NNC_HEARTBEAT_SECONDS": "1"}
    process, info = start_stack(tmp_path, free_port(), grace)
    try:
        client = LiveClient(info["url"])
        client.sign_up("phoenix")
        upload = client.upload(write_class_zip(tmp_path / "d.zip", digit_images(10, 2, size=32)))
        job = client.post("/api/jobs/", json={"plugin": "image_classification", "params": {
            "source": upload["id"], "width": 32, "height": 32, "ratio1": 70, "ratio2": 30,
            "file2": "valid"}}).json()
        job = wait_for(lambda: (j := client.get(f"/api/jobs/{job['id']}/").json())["state"] == "succeeded" and j)
        train_id, valid_id = (d["id"] for d in job["datasets"])
        project = client.post("/api/projects/", json={"name": "phoenix", "train_dataset": train_id,
                                                      "valid_dataset": valid_id}).json()
        client.patch(f"/api/projects/{project['id']}/", json={"config": {"max_epoch": 200, "batch_size": 4}})
        params = {"train_param": "all", "input_size": 32}
        first = client.post(f"/api/projects/{project['id']}/runs/", json={"plugin": "transfer_learning",
                                                                          "params": params}).json()
        client.patch(f"/api/projects/{project['id']}/", json={"config": {"max_epoch": 1}})  # runs snapshot it
        second = client.post(f"/api/projects/{project['id']}/runs/", json={"plugin": "transfer_learning",
                                                                           "params": params}).json()
        wait_for(lambda: any(e["kind"] == "log" and e["data"]["line"].startswith("epoch 1/200")
                             for e in client.get(f"/api/jobs/{first['job']}/events/").json()["events"]),
                 message="the first run never finished an epoch")
        assert client.get(f"/api/jobs/{second['job']}/").json()["state"] == "queued"
        children = descendants(process.pid)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    assert_none_left(children)  # every child dies with the launcher (PR_SET_PDEATHSIG), the training one too
    (tmp_path / "ready.json").unlink()
    process, info = start_stack(tmp_path, free_port(), grace)
    try:
        client = LiveClient(info["url"])
        client.sign_in("phoenix")  # the same database: the account and its jobs are still there
        lost = wait_for(lambda: (j := client.get(f"/api/jobs/{first['job']}/").json())["state"] != "running" and j,
                        timeout=60, message="the job of the killed studio was left running")
        assert (lost["state"], lost["message"]) == ("failed", "worker lost")
        ended = wait_for(lambda: (r := client.get(f"/api/runs/{second['id']}/").json())["state"] in FINAL and r,
                         timeout=120, message="the queued run was never sent again")
        assert ended["state"] == "succeeded" and [h["epoch"] for h in ended["history"]] == [1]
        crash_broker_and_web_server_then_convert(process, info, client, tmp_path)
        children = descendants(process.pid)
        web = {name for name in info["pids"] if name.startswith("daphne")}
        assert set(info["pids"]) - web == {"redis", "worker", "worker-gpu", "serving"} and len(web) >= 2
        assert len(children) > len(info["pids"])  # the workers' own processes too
    finally:
        stop_stack(process)
    assert process.returncode == 0  # a clean Ctrl-C (SIGTERM) ...
    assert_none_left(children)  # ... leaves no process, the restarted broker and web server included
    assert not (tmp_path / "run" / "redis_url").exists()
