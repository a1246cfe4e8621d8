"""CLIP zero-shot through the API (jobs run in-process): a colour-image project, the tiny random CLIP as
vitb32 (its config and imported weights in NNC_MODEL_DIR), the run's evaluation as any classifier's,
the bundle serving the evaluation's y', the form's schema, and missing weights as messages."""
from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from nnc_web.engine.clip.model import load_clip_bundle
from nnc_web.engine.training.bundle import load_bundle
from nnc_web.jobs.models import Job
from nnc_web.jobs.services import run_job
from nnc_web.projects.models import Run
from tests.api.helpers import upload
from tests.engine.test_clip import COLOURS, colour_image, install_tiny_clip, isolate_model_dirs
from tests.sample_data import write_class_zip

pytestmark = pytest.mark.django_db


def colour_project(client, tmp_path, per_class: int = 4) -> int:
    """red / green / blue images split 50/50 into `train` and `valid`, and a project on them."""
    grouped = {name: [colour_image(colour, 100 * k + i) for i in range(per_class)]
               for k, (name, colour) in enumerate(COLOURS.items())}
    source = upload(client, write_class_zip(tmp_path / "colours.zip", grouped)).json()["id"]
    job = client.post("/api/jobs/", {"plugin": "image_classification", "params": {
        "source": source, "width": 32, "height": 32, "ratio1": 50, "ratio2": 50, "file2": "valid"}},
        format="json").json()
    run_job(job["id"])
    train_id, valid_id = (d["id"] for d in client.get(f"/api/jobs/{job['id']}/").json()["datasets"])
    project = client.post("/api/projects/", {"name": "colours", "train_dataset": train_id,
                                             "valid_dataset": valid_id}, format="json").json()
    client.patch(f"/api/projects/{project['id']}/", {"config": {"batch_size": 4}}, format="json")
    return project["id"]


def start(client, project_id: int, **params):
    return client.post(f"/api/projects/{project_id}/runs/", {"plugin": "clip_zero_shot", "params": params},
                       format="json")


def finished(client, response) -> dict:
    assert response.status_code == 201, response.content
    run_job(response.json()["job"])
    return client.get(f"/api/runs/{response.json()['id']}/").json()


@pytest.fixture
def colours(alice, client_for, tmp_path, monkeypatch):
    client = client_for(alice)
    source = install_tiny_clip(monkeypatch, tmp_path, import_weights=False)
    call_command("import_weights", "vitb32", str(source))
    return client, colour_project(client, tmp_path)


def test_a_zero_shot_run_is_evaluated_served_and_post_processed_like_a_classifier(colours):
    client, project_id = colours
    run = finished(client, start(client, project_id, model="vitb32", query_text="blue, red, green",
                                 template="photo"))
    assert run["state"] == "succeeded", Job.objects.get(pk=run["job"]).message
    metrics, base = run["metrics"], f"/api/runs/{run['id']}"
    assert metrics["kind"] == "zero_shot" and metrics["class_names"] == ["blue", "red", "green"]
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.sum() == 6 and metrics["accuracy"] == pytest.approx(np.trace(matrix) / 6)
    assert run["history"] == []
    text = b"".join(client.get(f"{base}/files/output_result.csv").streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["x:image", "y:label;blue;red;green", "y'__0", "y'__1", "y'__2"]
    assert {(r[0].split("/")[-2], r[1]) for r in rows[1:]} == {("blue", "0"), ("red", "1"), ("green", "2")}
    # The evaluation tab's rows agree with the confusion matrix (same class order in y and y').
    for actual in range(3):
        page = client.get(f"{base}/results/?actual={actual}&limit=50").json()
        assert page["total"] == matrix[actual].sum() == sum(r[1] == str(actual) for r in rows[1:])
    assert client.get(f"{base}/results/?misclassified=1").json()["total"] == matrix.sum() - np.trace(matrix)
    # Post-processing reads the same table: the cross tabulation of y and y' is the confusion matrix.
    response = client.post(f"{base}/postprocess/", {"plugin": "cross_tabulation", "params": {
        "variable1": "y", "variable2": "y'"}}, format="json")
    run_job(response.json()["job"])
    table = list(csv.reader(io.StringIO(b"".join(client.get(
        f"{base}/outputs/cross_tabulation.csv").streaming_content).decode())))
    counts = np.zeros((3, 3), dtype=int)
    for row in table[4:]:
        for column, header in enumerate(table[3][1:], start=1):
            counts[int(row[0].split("= ")[-1]), int(header.split("= ")[-1])] = int(row[column])
    assert (counts == matrix).all()
    folder = Run.objects.get(pk=run["id"]).folder()
    (folder / "model" / "model.onnx.0f3a.partial").write_bytes(b"half an export")  # a first download's, in flight
    bundle = zipfile.ZipFile(io.BytesIO(b"".join(client.get(f"{base}/bundle/").streaming_content)))
    assert sorted(bundle.namelist()) == [f"run{run['id']}-model/manifest.json",
                                         f"run{run['id']}-model/weights.safetensors"]
    # What an endpoint answers (load_clip_bundle.predict) is the evaluation's y' for the same images.
    served = load_clip_bundle(folder / "model").predict([Image.open(r[0]) for r in rows[1:]])
    assert np.abs(served - np.array([[float(v) for v in r[2:]] for r in rows[1:]])).max() < 1e-5
    log = [e["data"]["line"] for e in client.get(f"/api/jobs/{run['job']}/events/").json()["events"]
           if e["kind"] == "log"]
    assert "CLIP ViT-B/32: text features of 3 classes from 1 prompt each, computed once" in log


def test_classes_from_a_file_and_unmatched_names_give_scores_only(colours, tmp_path):
    client, project_id = colours
    (tmp_path / "classes.csv").write_text("cat\ndog\n")
    file_id = upload(client, tmp_path / "classes.csv").json()["id"]
    run = finished(client, start(client, project_id, query_text_csv_file=file_id, template="ensemble"))
    assert run["state"] == "succeeded", Job.objects.get(pk=run["job"]).message
    assert "accuracy" not in run["metrics"]
    assert "blue, green, red are not among the query classes" in run["metrics"]["note"]
    header = b"".join(client.get(f"/api/runs/{run['id']}/files/output_result.csv").streaming_content)
    assert header.decode().splitlines()[0] == "x:image,y:label;blue;green;red,y'__0,y'__1"


def test_the_form_takes_exactly_one_class_list(colours, tmp_path):
    client, project_id = colours
    schema = {p["id"]: p for p in client.get("/api/plugins/?kind=training").json()["results"]}["clip_zero_shot"]
    params = {p["name"]: p for p in schema["params"]}
    assert [p["name"] for p in schema["params"]] == ["model", "query_text", "query_text_csv_file", "template"]
    assert params["model"]["type"] == "model" and params["model"]["choices"] == ["vitb32", "vitb16", "vitl14"]
    assert "import_weights" in params["model"]["help"] and "open_clip_model.safetensors" in params["model"]["help"]
    assert (params["query_text"]["type"], params["query_text_csv_file"]["type"]) == ("text", "file")
    assert params["template"]["choices"] == ["none", "photo", "ensemble"]
    assert schema["config_fields"] == ["batch_size", "device"]
    (tmp_path / "classes.csv").write_text("cat\n")
    file_id = upload(client, tmp_path / "classes.csv").json()["id"]
    both = start(client, project_id, query_text="cat", query_text_csv_file=file_id)
    assert both.status_code == 400 and "not both" in both.json()["errors"]["query_text_csv_file"][0]
    neither = start(client, project_id)
    assert neither.status_code == 400 and "give the classes" in neither.json()["errors"]["query_text"][0]
    repeated = start(client, project_id, query_text="cat, dog, cat")
    assert repeated.status_code == 400 and "repeats class 1" in repeated.json()["errors"]["query_text"][0]
    models = {m["id"]: m["available"] for m in client.get("/api/models/").json()["results"]}
    assert models["vitb32"] is True and models["vitl14"] is False


def test_missing_weights_are_a_form_error_and_a_clear_job_failure(alice, client_for, tmp_path, monkeypatch):
    client = client_for(alice)
    isolate_model_dirs(monkeypatch, tmp_path)
    project_id = colour_project(client, tmp_path, per_class=2)
    refused = start(client, project_id, model="vitb16", query_text="red, green")
    assert refused.status_code == 400 and refused.json()["errors"]["model"][0].startswith(
        "the weights of vitb16 are not on this machine (ask your administrator")
    install_tiny_clip(monkeypatch, tmp_path)
    queued = start(client, project_id, query_text="red, green")
    assert queued.status_code == 201
    (tmp_path / "models" / "vitb32.safetensors").unlink()  # the weights went before the job ran
    run = finished(client, queued)
    job = Job.objects.get(pk=run["job"])
    assert run["state"] == "failed" and job.state == "failed"
    assert "download open_clip_model.safetensors" in job.message and "import_weights vitb32" in job.message
    assert "Traceback" not in job.message and "internal error" not in job.message


def test_clip_image_features_train_a_linear_probe(colours):
    client, project_id = colours
    client.patch(f"/api/projects/{project_id}/", {"config": {"max_epoch": 2, "learning_rate": 0.01}}, format="json")
    run = finished(client, client.post(f"/api/projects/{project_id}/runs/", {"plugin": "transfer_learning", "params": {
        "model": "vitb32", "train_param": "last_fc_only", "input_size": 32}}, format="json"))
    assert run["state"] == "succeeded", Job.objects.get(pk=run["job"]).message
    assert [h["epoch"] for h in run["history"]] == [1, 2]
    assert np.array(run["metrics"]["confusion_matrix"]).sum() == 6
    model, manifest = load_bundle(Run.objects.get(pk=run["id"]).folder() / "model")
    assert manifest["backbone"] == "vitb32" and model.head.in_features == 512
