"""Explaining an anomaly run's images through the API (jobs run in-process): Grad-CAM, LIME and SHAP of
the image anomaly score on a PaDiM run, from the image cell the evaluation page shows; another user's
run is not found."""
from __future__ import annotations

import pytest
from PIL import Image

from nnc_web.jobs.models import Job
from nnc_web.jobs.services import run_job
from nnc_web.projects.models import Run
from tests.api.helpers import upload
from tests.sample_data import write_mvtec_zip

pytestmark = pytest.mark.django_db

SIZE = 96


def finished(client, url: str, body: dict) -> tuple[dict, Job]:
    response = client.post(url, body, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    run_job(created.get("job", created.get("id")))
    return created, Job.objects.get(pk=created.get("job", created.get("id")))


def test_grad_cam_lime_and_shap_explain_an_anomaly_runs_score(alice, bob, client_for, tmp_path):
    client = client_for(alice)
    source = upload(client, write_mvtec_zip(tmp_path / "brick.zip", train=4, good=1, bad=2, size=SIZE)).json()["id"]
    _, job = finished(client, "/api/jobs/", {"plugin": "anomaly_detection_dataset",
                                             "params": {"source": source, "prefix": "brick_"}})
    assert job.state == "succeeded", job.message
    datasets = {d["name"]: d["id"] for d in client.get("/api/datasets/").json()["results"]}
    project = client.post("/api/projects/", {"name": "brick", "train_dataset": datasets["brick_train"],
                                             "valid_dataset": datasets["brick_test"]}, format="json").json()
    client.patch(f"/api/projects/{project['id']}/", {"config": {"batch_size": 8}}, format="json")
    run, job = finished(client, f"/api/projects/{project['id']}/runs/",
                        {"plugin": "padim", "params": {"input_size": SIZE, "gaussian": "1/16"}})
    assert job.state == "succeeded", job.message
    base = f"/api/runs/{run['id']}"
    worst = client.get(f"{base}/results/?limit=1").json()["rows"][0]  # the evaluation's first: the most anomalous

    for plugin, name, params in [("grad_cam", "grad_cam.png", {}), ("lime_image", "lime.png", {"num_samples": 16}),
                                 ("shap_image", "shap.png", {"num_samples": 4, "batch_size": 4})]:
        _, job = finished(client, f"{base}/postprocess/", {"plugin": plugin, "params": {
            "model": "model", "image": worst["image"], "class_index": 0, **params}})
        assert job.state == "succeeded", (plugin, job.message)
        lines = [e.data["line"] for e in job.events.filter(kind="log")]
        assert any(line.endswith(f"of a efficientnet_lite0 padim model (one output: 0 (anomaly score), {SIZE} px) on cpu")
                   for line in lines), lines
        assert f"the model's anomaly score is {worst['score']:.4f}; explaining it" in lines, (plugin, lines)
        listed = client.get(f"{base}/postprocess/").json()["results"][0]
        assert listed["plugin_id"] == plugin and listed["outputs"] == [{"path": name, "kind": "image"}]
        assert Image.open(Run.objects.get(pk=run["id"]).folder() / name).size == (SIZE, SIZE)
    assert any(line == "target layer blocks.4 (the default for this model)"
               for line in [e.data["line"] for e in Job.objects.filter(plugin_id="grad_cam").get().events.all()
                            if e.kind == "log"])

    # The batch form over the evaluation's table: every row's score explained (its label 0/1 is no class).
    _, job = finished(client, f"{base}/postprocess/", {"plugin": "grad_cam_batch", "params": {
        "model": "model", "input_variable": "x", "label_variable": "y"}})
    assert job.state == "succeeded", job.message
    table = (Run.objects.get(pk=run["id"]).folder() / "gradcam.csv").read_text().splitlines()
    assert len(table) == 1 + client.get(f"{base}/results/?limit=1").json()["total"]
    assert table[0].startswith("gradcam,")

    _, job = finished(client, f"{base}/postprocess/", {"plugin": "why_did_it_fail", "params": {"model": "model"}})
    assert job.state == "failed" and job.message.startswith("Why did it fail compares a classifier's classes")

    other = client_for(bob).post(f"{base}/postprocess/", {"plugin": "grad_cam", "params": {
        "image": worst["image"], "class_index": 0}}, format="json")
    assert other.status_code == 404
