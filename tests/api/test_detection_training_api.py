"""A detection run through the API: YOLO v2 images -> CenterNet dataset -> object_detection run ->
metrics, output files, worst-first result rows, re-evaluation, the endpoint's predictor, bad input."""
from __future__ import annotations

import json

import pytest

from nnc_web.projects.models import Run
from tests.api.helpers import upload
from tests.api.test_anomaly_api import run_plugin, start
from tests.sample_data import write_yolo_zip

pytestmark = pytest.mark.django_db


def test_a_detection_run_through_the_api(alice, client_for, tmp_path):
    client = client_for(alice)
    source = upload(client, write_yolo_zip(tmp_path / "yolo.zip", count=12)).json()["id"]
    job = run_plugin(client, "object_detection_centernet", {
        "source": source, "num_class": 2, "width": 64, "height": 64, "channel": 3, "grid_size": 4,
        "file1": "det_train", "ratio1": 75, "file2": "det_valid", "ratio2": 25, "class_names": "red,green"})
    assert job.state == "succeeded", job.message
    datasets = {d["name"]: d for d in client.get("/api/datasets/").json()["results"]}
    project = client.post("/api/projects/", {"name": "boxes", "train_dataset": datasets["det_train"]["id"],
                                             "valid_dataset": datasets["det_valid"]["id"]}, format="json").json()
    client.patch(f"/api/projects/{project['id']}/", {"config": {"batch_size": 8, "max_epoch": 1}}, format="json")
    response = client.post(f"/api/projects/{project['id']}/runs/", {"plugin": "object_detection",
                                                                    "params": {"input_size": 70}}, format="json")
    assert response.status_code == 400 and "multiple of 32" in str(response.json())
    run = start(client, project["id"], "object_detection", input_size=64)  # the names: the dataset's own
    assert run["state"] == "succeeded", run
    metrics = run["metrics"]
    assert metrics["kind"] == "detection" and 0 <= metrics["map_50"] <= 1
    assert [c["class"] for c in metrics["per_class"]] == ["red", "green"]
    assert {"train_loss", "heat_loss", "valid_map50"} <= set(run["history"][0])
    page = client.get(f"/api/runs/{run['id']}/results/?limit=10").json()
    assert page["detection"] and page["total"] == 3 and page["threshold"] == 0.5
    errors = [r["error"] for r in page["rows"]]
    assert errors == sorted(errors, reverse=True) and page["rows"][0]["truth"].endswith("_boxes.txt")
    assert client.get(f"/api/runs/{run['id']}/files/{page['rows'][0]['predicted']}").status_code == 200
    assert client.get(f"/api/runs/{run['id']}/files/pr_curve.bokeh.json").status_code == 200
    job = client.post(f"/api/runs/{run['id']}/evaluate/").json()
    from nnc_web.jobs.services import run_job

    run_job(job["id"])
    assert client.get(f"/api/runs/{run['id']}/").json()["metrics"]["map_50"] == pytest.approx(metrics["map_50"])
    from django.core.management import call_command

    (Run.objects.get(pk=run["id"]).folder() / "metrics.json").unlink()
    call_command("evaluate", str(run["id"]))  # headless, through the same evaluator as Evaluate again
    assert Run.objects.get(pk=run["id"]).metrics["map_50"] == pytest.approx(metrics["map_50"])
    assert (Run.objects.get(pk=run["id"]).folder() / "metrics.json").is_file()
    assert (Run.objects.get(pk=run["id"]).folder() / "model" / "manifest.json").exists()
    from nnc_web.engine.detection_training.bundle import load_detector
    from tests.api.exports import assert_exports_match_the_bundle

    curves = client.get(f"/api/curves/?runs={run['id']}")
    assert curves.status_code == 200  # the learning curves of a detector: its loss parts and mAP
    models = [r for r in curves.json()["doc"]["roots"][0]["attributes"]["renderers"]]
    source = models[0]["attributes"]["data_source"]
    series = [s["key"] for s in json.loads(source["attributes"]["tags"][0])["series"]]
    assert series == ["train_loss", "heat_loss", "size_loss", "offset_loss", "valid_map50", "valid_map"]
    assert client.get(f"/api/runs/{run['id']}/").json()["exportable"] is True
    assert_exports_match_the_bundle(client, run["id"], load_detector, ("heat", "size", "offset"))


def test_a_classification_dataset_is_refused_by_the_detector(alice, client_for, tmp_path):
    from nnc_web.jobs.models import Job
    from tests.api.helpers import digits_project

    client = client_for(alice)
    project_id, train_id, valid_id = digits_project(client, tmp_path)
    response = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "object_detection",
                                                                 "params": {"input_size": 64}}, format="json")
    assert response.status_code == 400  # refused at the start: no run, no job that would fail later
    errors = response.json()["errors"]
    assert set(errors) == {"train_dataset", "valid_dataset"}
    assert errors["train_dataset"][0].startswith(f"train (#{train_id}) is an image-classification dataset: Object "
                                                 f"Detection (CenterNet, offline) needs an object-detection dataset")
    assert errors["valid_dataset"][0].endswith("None of your datasets fits yet: create one first")
    assert not Run.objects.exists() and not Job.objects.filter(kind="training").exists()
