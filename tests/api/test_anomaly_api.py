"""Anomaly detection through the API: MVTec-layout datasets, PaDiM / PatchCore runs, evaluation rows,
the threshold and re-evaluation (jobs run in-process)."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from nnc_web.jobs.models import Job
from nnc_web.jobs.services import run_job
from nnc_web.projects.models import Run
from tests.api.helpers import upload
from tests.sample_data import digit_images, write_class_zip, write_mvtec_zip

pytestmark = pytest.mark.django_db


def run_plugin(client, plugin: str, params: dict) -> Job:
    response = client.post("/api/jobs/", {"plugin": plugin, "params": params}, format="json")
    assert response.status_code == 201, response.content
    run_job(response.json()["id"])
    return Job.objects.get(pk=response.json()["id"])


@pytest.fixture
def anomaly_project(alice, client_for, tmp_path):
    client = client_for(alice)
    source = upload(client, write_mvtec_zip(tmp_path / "brick.zip", train=16, good=8, bad=8)).json()["id"]
    job = run_plugin(client, "anomaly_detection_dataset", {"source": source, "prefix": "brick_"})
    assert job.state == "succeeded", job.message
    datasets = {d["name"]: d for d in client.get("/api/datasets/").json()["results"]}
    project = client.post("/api/projects/", {"name": "brick", "train_dataset": datasets["brick_train"]["id"],
                                             "valid_dataset": datasets["brick_test"]["id"]}, format="json").json()
    client.patch(f"/api/projects/{project['id']}/", {"config": {"batch_size": 8}}, format="json")
    return client, project["id"], datasets


def start(client, project_id: int, plugin: str, **params) -> dict:
    response = client.post(f"/api/projects/{project_id}/runs/", {"plugin": plugin, "params": params}, format="json")
    assert response.status_code == 201, response.content
    run_job(response.json()["job"])
    return client.get(f"/api/runs/{response.json()['id']}/").json()


def test_mvtec_layout_makes_a_normal_training_set_and_a_labelled_test_set_with_masks(anomaly_project):
    client, _, datasets = anomaly_project
    train, test = datasets["brick_train"], datasets["brick_test"]
    assert train["rows"] == 16 and train["class_counts"] == [16, 0]
    assert test["rows"] == 16 and test["class_counts"] == [8, 8] and test["class_names"] == ["normal", "anomalous"]
    assert [c["name"] for c in test["columns"]] == ["x", "y", "mask"] and test["columns"][2]["kind"] == "mask"
    rows = client.get(f"/api/datasets/{test['id']}/rows/?limit=20").json()["rows"]
    mask_cell = next(r for r in rows if r["cells"][1] == "1")["cells"][2]
    response = client.get(f"/api/datasets/{test['id']}/files/{mask_cell.removeprefix('./')}")
    mask = np.asarray(Image.open(io.BytesIO(b"".join(response.streaming_content))))
    assert set(np.unique(mask)) == {0, 1} and 24 * 24 <= mask.sum() <= 56 * 56


def test_padim_run_scores_maps_and_keeps_a_bundle(anomaly_project):
    client, project_id, _ = anomaly_project
    run = start(client, project_id, "padim")
    assert run["state"] == "succeeded"
    metrics = run["metrics"]
    assert metrics["kind"] == "anomaly" and metrics["image_auroc"] >= 0.95 and metrics["pixel_auroc"] >= 0.95
    assert metrics["settings"]["gaussian"] == "dense" and metrics["settings"]["dim"] == 100
    assert metrics["settings"]["feature_ratio"] == "auto"
    folder = Run.objects.get(pk=run["id"]).folder()
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["image_auroc"] == metrics["image_auroc"] and saved["threshold"] == metrics["threshold"]
    with open(folder / "output_result.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["x:image", "y:label;normal;anomalous", "mask:mask;normal;anomalous", "y'", "x'", "heatmap"]
    assert np.load(folder / rows[1][4]).shape == (224, 224)
    assert client.get(f"/api/runs/{run['id']}/files/{rows[1][5][2:]}").status_code == 200
    assert client.get(f"/api/runs/{run['id']}/files/most_anomalous.png").status_code == 200
    manifest = json.loads((folder / "model" / "manifest.json").read_text())
    assert manifest["architecture"] == "padim" and manifest["threshold"] == metrics["threshold"]
    log = [e["data"]["line"] for e in client.get(f"/api/jobs/{run['job']}/events/").json()["events"]
           if e["kind"] == "log"]
    assert "PaDiM: 100 of 176 channels (auto: the paper's 100)" in log and log[-1] == "worker done"
    assert any("statistics 126.7 MB (float32, accumulated in place" in line for line in log)
    assert client.get(f"/api/runs/{run['id']}/export/?to=onnx").status_code == 400
    assert client.get(f"/api/runs/{run['id']}/").json()["exportable"] is False  # so the page offers none

    page = client.get(f"/api/runs/{run['id']}/results/?limit=5").json()
    assert page["anomaly"] and page["total"] == 16 and len(page["all_scores"]) == 16
    assert [r["score"] for r in page["rows"]] == sorted(page["all_scores"], reverse=True)[:5]
    assert page["rows"][0]["label"] == 1 and page["rows"][0]["heatmap"].startswith("heatmaps/")
    middle = sorted(page["all_scores"])[8]
    flagged = client.get(f"/api/runs/{run['id']}/results/?threshold={middle}&flagged=1").json()
    passed = client.get(f"/api/runs/{run['id']}/results/?threshold={middle}&flagged=0").json()
    assert flagged["total"] == 8 and passed["total"] == 8 and min(r["score"] for r in flagged["rows"]) >= middle

    response = client.post(f"/api/runs/{run['id']}/threshold/", {"threshold": "high"}, format="json")
    assert response.status_code == 400 and "number" in response.json()["detail"]
    response = client.post(f"/api/runs/{run['id']}/threshold/", {"threshold": middle}, format="json")
    assert response.status_code == 200 and response.json()["metrics"]["chosen_threshold"] == middle
    assert json.loads((folder / "model" / "manifest.json").read_text())["threshold"] == middle

    job = client.post(f"/api/runs/{run['id']}/evaluate/").json()
    run_job(job["id"])
    again = client.get(f"/api/runs/{run['id']}/").json()["metrics"]
    assert again["image_auroc"] == metrics["image_auroc"] and again["chosen_threshold"] == middle
    rescored = client.get(f"/api/runs/{run['id']}/results/?limit=1").json()["all_scores"]
    assert rescored == page["all_scores"]


def test_patchcore_run_and_its_memory_bank(anomaly_project):
    client, project_id, _ = anomaly_project
    run = start(client, project_id, "patchcore", sample_ratio=0.02)
    metrics = run["metrics"]
    assert metrics["image_auroc"] >= 0.95 and metrics["pixel_auroc"] >= 0.95
    assert metrics["settings"]["memory_bank"] == int(16 * 28 * 28 * 0.02)
    log = "\n".join(e["data"]["line"] for e in client.get(f"/api/jobs/{run['job']}/events/").json()["events"]
                    if e["kind"] == "log")
    assert "greedy k-center coreset: 250 of 12544 patches" in log


def test_parameters_are_checked(anomaly_project):
    client, project_id, _ = anomaly_project
    response = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "padim", "params": {
        "gaussian": "1/4", "feature_ratio": 0, "input_size": 200}}, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"gaussian", "feature_ratio"}
    assert errors["feature_ratio"] == ["must be auto or a number above 0 and at most 1"]
    plugins = {p["id"]: p for p in client.get("/api/plugins/?kind=training").json()["results"]}
    for plugin in ("padim", "patchcore"):  # the form's default; a number is typed into the same field
        field = next(p for p in plugins[plugin]["params"] if p["name"] == "feature_ratio")
        assert field["default"] == "auto" and field["type"] == "text"
    response = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "patchcore", "params": {
        "input_size": 200}}, format="json")
    assert response.json()["errors"] == {"input_size": ["must be a multiple of 32"]}
    response = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "padim", "params": {
        "model": "wide_resnet50_2"}}, format="json")
    assert response.json()["errors"]["model"][0].startswith(
        "the weights of wide_resnet50_2 are not on this machine (ask your administrator")


def test_anomalous_training_images_are_left_out_with_a_warning(anomaly_project):
    client, project_id, datasets = anomaly_project
    client.patch(f"/api/projects/{project_id}/", {"train_dataset": datasets["brick_test"]["id"]}, format="json")
    run = start(client, project_id, "padim", gaussian="single")
    assert run["state"] == "succeeded"
    assert "8 images labelled anomalous" in run["metrics"]["warnings"][0]


def test_grey_datasets_fail_with_a_clear_message(alice, client_for, tmp_path, anomaly_project):
    client, project_id, datasets = anomaly_project
    source = upload(client, write_class_zip(tmp_path / "d.zip", digit_images(4, 2, size=32))).json()["id"]
    job = run_plugin(client, "image_classification", {"source": source, "channel": 1, "width": 32, "height": 32})
    grey = job.datasets.get().pk
    client.patch(f"/api/projects/{project_id}/", {"train_dataset": grey}, format="json")
    response = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "padim", "params": {}}, format="json")
    if response.status_code == 400:  # refused when the run is created (the project checks its datasets' fit)
        message = response.json()["detail"]
        assert "1-channel images" in message and "3-channel" in message
    else:  # or by the plugin, which checks every image
        run_job(response.json()["job"])
        job = Job.objects.get(pk=response.json()["job"])
        assert job.state == "failed" and "must be 3-channel RGB images" in job.message
        message = job.message
    assert "Traceback" not in message


def test_dataset_plugin_explains_a_wrong_layout(alice, client_for, tmp_path):
    client = client_for(alice)
    source = upload(client, write_class_zip(tmp_path / "d.zip", digit_images(2, 2))).json()["id"]
    job = run_plugin(client, "anomaly_detection_dataset", {"source": source})
    assert job.state == "failed" and "MVTec AD layout" in job.message
    response = client.post("/api/jobs/", {"plugin": "anomaly_detection_dataset", "params": {
        "source": source, "channel": 1}}, format="json")
    assert response.json()["errors"] == {"channel": ["PaDiM and PatchCore need RGB images: use 3"]}


def test_threshold_belongs_to_the_runs_owner(anomaly_project, bob, client_for):
    client, project_id, _ = anomaly_project
    run = start(client, project_id, "padim", gaussian="single")
    other = client_for(bob)
    assert other.post(f"/api/runs/{run['id']}/threshold/", {"threshold": 1}, format="json").status_code == 404
    assert other.get(f"/api/runs/{run['id']}/results/").status_code == 404


def test_output_table_filters_by_the_threshold_and_parameter_stats_read_anomaly_bundles(anomaly_project):
    import pandas as pd
    from safetensors.numpy import load_file

    client, project_id, _ = anomaly_project
    for plugin, params in (("padim", {"gaussian": "single", "feature_ratio": "0.5"}),
                           ("patchcore", {"sample_ratio": 0.02})):
        run = start(client, project_id, plugin, **params)
        assert run["metrics"]["settings"]["dim"] == (12 + 20 + 56 if plugin == "padim" else 152)  # 0.5 / auto
        base = f"/api/runs/{run['id']}"
        scores = pd.read_csv(Run.objects.get(pk=run["id"]).folder() / "output_result.csv")["y'"].to_numpy()
        page = client.get(f"{base}/table/?limit=50").json()
        assert page["filters"]["anomaly"] and page["threshold"] == pytest.approx(run["metrics"]["threshold"])
        cut = float(np.median(scores))
        flagged = client.get(f"{base}/table/?limit=50&threshold={cut}&flagged=1").json()
        passed = client.get(f"{base}/table/?limit=50&threshold={cut}&flagged=0").json()
        assert [r["index"] for r in flagged["rows"]] == [i for i, s in enumerate(scores) if s >= cut]
        assert [r["index"] for r in passed["rows"]] == [i for i, s in enumerate(scores) if s < cut]

        job = client.post(f"{base}/postprocess/", {"plugin": "parameter_stats", "params": {}}, format="json").json()
        run_job(job["job"])
        assert Job.objects.get(pk=job["job"]).state == "succeeded", Job.objects.get(pk=job["job"]).message
        stats = pd.read_csv(Run.objects.get(pk=run["id"]).folder() / "parameter_stats.csv")
        tensors = load_file(Run.objects.get(pk=run["id"]).folder() / "model" / "weights.safetensors")
        assert sorted(stats["name"]) == sorted(tensors)
        for name, values in tensors.items():
            row = stats[stats["name"] == name].iloc[0]
            values = values.astype(np.float64)
            assert row["size"] == values.size and row["max"] == pytest.approx(values.max())
            assert row["stdev"] == pytest.approx(values.std(ddof=0), rel=1e-9, abs=1e-12)
