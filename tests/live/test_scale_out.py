"""A second machine joins the studio: `manage.py runworker` started from another working directory with
only the shared settings (broker, database, data folder) takes the gpu jobs; the jobs say where they ran;
killing that machine's workers marks its job lost and leaves the studio's own worker working."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from nnc_web.launcher import free_port
from tests.live.test_stack import FINAL, wait_for
from tests.sample_data import digit_images, write_class_zip
from tests.stack import ROOT, start_stack, stop_stack

GRACE = {"NNC_HEARTBEAT_GRACE_SECONDS": "3", "NNC_HEARTBEAT_SECONDS": "1"}


def start_worker_machine(folder, redis_url: str, data_dir) -> tuple[subprocess.Popen, dict]:
    folder.mkdir()
    ready = folder / "ready.json"
    env = {"PATH": os.environ["PATH"], "HOME": str(folder), "REDIS_URL": redis_url, "NNC_DATA_DIR": str(data_dir),
           "NNC_WORKER_HOST": "machine-b", "DJANGO_SETTINGS_MODULE": "nnc_web.settings", **GRACE}
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


def test_a_worker_on_another_machine_runs_gpu_jobs_and_its_loss_is_contained(tmp_path):
    from tests.conftest import LiveClient

    data_dir = tmp_path / "shared"
    data_dir.mkdir()
    studio, info = start_stack(data_dir, free_port(), GRACE, args=("--gpu-worker", "none"))
    machine = None
    try:
        machine, machine_info = start_worker_machine(tmp_path / "machine-b", info["redis_url"], data_dir)
        client = LiveClient(info["url"])
        client.sign_up("grower")
        upload = client.upload(write_class_zip(tmp_path / "d.zip", digit_images(8, 2, size=32)))

        def convert() -> dict:
            job = client.post("/api/jobs/", json={"plugin": "image_classification", "params": {
                "source": upload["id"], "width": 32, "height": 32, "ratio1": 70, "ratio2": 30,
                "file2": "valid"}}).json()
            return wait_for(lambda: (j := client.get(f"/api/jobs/{job['id']}/").json())["state"] in FINAL and j,
                            message="the conversion never ended")

        conversion = convert()  # a cpu job: the studio's own worker
        assert conversion["state"] == "succeeded" and not conversion["worker"].startswith("machine-b")
        assert " pid " in conversion["worker"] and conversion["worker"].endswith("· CPU")
        train_id, valid_id = (d["id"] for d in conversion["datasets"])
        project = client.post("/api/projects/", json={"name": "grow", "train_dataset": train_id,
                                                      "valid_dataset": valid_id}).json()
        client.patch(f"/api/projects/{project['id']}/", json={"config": {"max_epoch": 200, "batch_size": 4}})
        run = client.post(f"/api/projects/{project['id']}/runs/", json={"plugin": "transfer_learning",
                                                                        "params": {"train_param": "all", "input_size": 32}}).json()
        running = wait_for(lambda: (j := client.get(f"/api/jobs/{run['job']}/").json())["state"] == "running" and j,
                           timeout=90, message="machine-b never took the gpu job")
        worker_pid = machine_info["pids"]["worker"]
        assert running["worker"].startswith("machine-b pid ")
        listed = client.get("/api/jobs/").json()
        rows = listed["results"] if isinstance(listed, dict) else listed
        assert next(j for j in rows if j["id"] == run["job"])["worker"] == running["worker"]

        os.kill(machine.pid, signal.SIGKILL)  # the machine goes away: its launcher and its workers at once
        os.killpg(worker_pid, signal.SIGKILL)
        lost = wait_for(lambda: (j := client.get(f"/api/jobs/{run['job']}/").json())["state"] != "running" and j,
                        timeout=60, message="the job of the lost machine was left running")
        assert (lost["state"], lost["message"]) == ("failed", "worker lost")
        assert convert()["state"] == "succeeded"  # the studio's own worker is unaffected
    finally:
        if machine is not None and machine.poll() is None:
            machine.kill()
        stop_stack(studio)
