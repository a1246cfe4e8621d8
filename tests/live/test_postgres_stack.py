"""The live stack on a real PostgreSQL (a private server, installed with apt when missing): migrations,
every state change of a job's life, JSON fields, the reaper on the database's clock, and resume."""
from __future__ import annotations

import json
import os
import signal
import tempfile
from pathlib import Path

import pytest

from nnc_web.launcher import free_port
from tests.live.test_stack import FINAL, wait_for
from tests.postgres import PrivatePostgres
from tests.sample_data import digit_images, write_class_zip
from tests.stack import start_stack, stop_stack

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def postgres_url():
    server = PrivatePostgres(Path(tempfile.mkdtemp(prefix="nnc-pg-")))
    try:
        yield server.start()
    finally:
        server.stop()


def test_the_studio_on_postgresql_trains_loses_a_worker_and_resumes(postgres_url, tmp_path):
    from tests.conftest import LiveClient

    env = {"DATABASE_URL": postgres_url, "NNC_HEARTBEAT_SECONDS": "1", "NNC_HEARTBEAT_GRACE_SECONDS": "3"}
    process, info = start_stack(tmp_path, free_port(), env)
    try:
        client = LiveClient(info["url"])
        client.sign_up("elephant")
        upload = client.upload(write_class_zip(tmp_path / "d.zip", digit_images(10, 2, size=32)))
        job = client.post("/api/jobs/", json={"plugin": "image_classification", "params": {
            "source": upload["id"], "width": 32, "height": 32, "ratio1": 70, "ratio2": 30, "file2": "valid"}}).json()
        job = wait_for(lambda: (j := client.get(f"/api/jobs/{job['id']}/").json())["state"] in FINAL and j)
        assert job["state"] == "succeeded" and job["params"]["width"] == 32  # a JSON field, back from PostgreSQL
        train_id, valid_id = (d["id"] for d in job["datasets"])
        project = client.post("/api/projects/", json={"name": "pg", "train_dataset": train_id,
                                                      "valid_dataset": valid_id}).json()
        client.patch(f"/api/projects/{project['id']}/", json={"config": {"max_epoch": 3, "batch_size": 4}})
        run = client.post(f"/api/projects/{project['id']}/runs/", json={"plugin": "transfer_learning", "params": {
            "train_param": "all", "input_size": 32}}).json()
        wait_for(lambda: any(e["kind"] == "log" and e["data"]["line"].startswith("epoch 2/3")
                             for e in client.get(f"/api/jobs/{run['job']}/events/").json()["events"]),
                 message="the run never finished two epochs")  # a checkpoint is written
        os.killpg(json.loads((tmp_path / "ready.json").read_text())["pids"]["worker-gpu"], signal.SIGKILL)
        lost = wait_for(lambda: (j := client.get(f"/api/jobs/{run['job']}/").json())["state"] != "running" and j,
                        timeout=60, message="the reaper never marked the job lost on PostgreSQL")
        assert (lost["state"], lost["message"]) == ("failed", "worker lost") and lost["worker"]
        resumed = client.post(f"/api/runs/{run['id']}/resume/")
        assert resumed.status_code == 200, resumed.text
        done = wait_for(lambda: (r := client.get(f"/api/runs/{run['id']}/").json())["state"] in FINAL and r,
                        timeout=180, message="the resumed run never ended")
        assert done["state"] == "succeeded" and [h["epoch"] for h in done["history"]] == [1, 2, 3]
        assert 0 <= done["metrics"]["accuracy"] <= 1
    finally:
        stop_stack(process)
