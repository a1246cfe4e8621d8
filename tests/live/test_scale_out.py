"""A second machine joins a studio on PostgreSQL, as deployed: `manage.py runworker` started from another
working directory with only the shared settings (broker, database, data folder) takes the gpu jobs; the
jobs say where they ran; killing that machine marks its job lost on the database's clock and leaves the
studio's own worker working; a third machine resumes the run from its checkpoint. Every state change,
JSON field and migration goes through a real PostgreSQL (a private server, installed with apt when
missing)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnc_web.launcher import free_port
from tests.live.test_stack import FINAL, wait_for
from tests.sample_data import digit_images, write_class_zip
from tests.stack import ROOT, start_stack, stop_stack

pytestmark = pytest.mark.live
GRACE = {"NNC_HEARTBEAT_GRACE_SECONDS": "3", "NNC_HEARTBEAT_SECONDS": "1"}


@pytest.fixture(scope="module")
def postgres_url(private_postgres):
    return private_postgres.database("scaleout")


def start_worker_machine(folder: Path, name: str, shared: dict) -> tuple[subprocess.Popen, dict]:
    folder.mkdir()
    ready = folder / "ready.json"
    env = {"PATH": os.environ["PATH"], "HOME": str(folder), "NNC_WORKER_HOST": name,
           "DJANGO_SETTINGS_MODULE": "nnc_web.settings", **shared, **GRACE}
    process = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "runworker", "--queues", "gpu",
                                "--ready-file", str(ready)], cwd=folder, env=env, start_new_session=True,
                               stdout=open(folder / "runworker.log", "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("runworker did not start:\n" + (folder / "runworker.log").read_text()[-3000:])
        time.sleep(0.2)
    return process, json.loads(ready.read_text())


def kill_machine(process: subprocess.Popen, info: dict) -> None:
    os.kill(process.pid, signal.SIGKILL)  # the machine goes away: its launcher and its workers at once
    os.killpg(info["pids"]["worker"], signal.SIGKILL)


def test_workers_on_other_machines_share_a_studio_on_postgresql(postgres_url, tmp_path):
    from tests.conftest import LiveClient

    data_dir = tmp_path / "shared"
    data_dir.mkdir()
    studio, info = start_stack(data_dir, free_port(), {"DATABASE_URL": postgres_url, **GRACE},
                               args=("--gpu-worker", "none"))
    shared = {"REDIS_URL": info["redis_url"], "DATABASE_URL": postgres_url, "NNC_DATA_DIR": str(data_dir)}
    machines: list[subprocess.Popen] = []
    try:
        machine_b, b_info = start_worker_machine(tmp_path / "machine-b", "machine-b", shared)
        machines.append(machine_b)
        client = LiveClient(info["url"])
        client.sign_up("grower")
        upload = client.upload(write_class_zip(tmp_path / "d.zip", digit_images(10, 2, size=32)))

        def convert() -> dict:
            job = client.post("/api/jobs/", json={"plugin": "image_classification", "params": {
                "source": upload["id"], "width": 32, "height": 32, "ratio1": 70, "ratio2": 30,
                "file2": "valid"}}).json()
            return wait_for(lambda: (j := client.get(f"/api/jobs/{job['id']}/").json())["state"] in FINAL and j,
                            message="the conversion never ended")

        conversion = convert()  # a cpu job: the studio's own worker
        assert conversion["state"] == "succeeded" and conversion["params"]["width"] == 32  # JSON, from PostgreSQL
        assert not conversion["worker"].startswith("machine-b")
        assert " pid " in conversion["worker"] and conversion["worker"].endswith("· CPU")
        train_id, valid_id = (d["id"] for d in conversion["datasets"])
        project = client.post("/api/projects/", json={"name": "grow", "train_dataset": train_id,
                                                      "valid_dataset": valid_id}).json()
        client.patch(f"/api/projects/{project['id']}/", json={"config": {"max_epoch": 6, "batch_size": 4}})
        run = client.post(f"/api/projects/{project['id']}/runs/", json={"plugin": "transfer_learning", "params": {
            "train_param": "all", "input_size": 32}}).json()
        running = wait_for(lambda: (j := client.get(f"/api/jobs/{run['job']}/").json())["state"] == "running" and j,
                           timeout=90, message="machine-b never took the gpu job")
        assert running["worker"].startswith("machine-b pid ")
        listed = client.get("/api/jobs/").json()
        rows = listed["results"] if isinstance(listed, dict) else listed
        assert next(j for j in rows if j["id"] == run["job"])["worker"] == running["worker"]
        wait_for(lambda: any(e["kind"] == "log" and e["data"]["line"].startswith("epoch 2/6")
                             for e in client.get(f"/api/jobs/{run['job']}/events/").json()["events"]),
                 message="the run never finished two epochs")  # a checkpoint is written

        kill_machine(machine_b, b_info)
        lost = wait_for(lambda: (j := client.get(f"/api/jobs/{run['job']}/").json())["state"] != "running" and j,
                        timeout=60, message="the job of the lost machine was left running")
        assert (lost["state"], lost["message"]) == ("failed", "worker lost")
        assert convert()["state"] == "succeeded"  # the studio's own worker is unaffected

        machine_c, _ = start_worker_machine(tmp_path / "machine-c", "machine-c", shared)
        machines.append(machine_c)
        resumed = client.post(f"/api/runs/{run['id']}/resume/")
        assert resumed.status_code == 200, resumed.text
        done = wait_for(lambda: (r := client.get(f"/api/runs/{run['id']}/").json())["state"] in FINAL and r,
                        timeout=180, message="the resumed run never ended")
        assert done["state"] == "succeeded" and [h["epoch"] for h in done["history"]] == [1, 2, 3, 4, 5, 6]
        assert 0 <= done["metrics"]["accuracy"] <= 1
        assert client.get(f"/api/jobs/{done['job']}/").json()["worker"].startswith("machine-c pid ")
    finally:
        for machine in machines:
            if machine.poll() is None:
                machine.send_signal(signal.SIGTERM)
                try:
                    machine.wait(30)
                except subprocess.TimeoutExpired:
                    machine.kill()
        stop_stack(studio)
