"""Projects, runs and the transfer-learning plugin through the API (jobs run in-process)."""
from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest

from nnc_web.jobs.models import Job
from nnc_web.jobs.services import run_job
from nnc_web.projects.models import Run
from tests.api.helpers import digits_project, upload

pytestmark = pytest.mark.django_db
FAST = {"max_epoch": 3, "batch_size": 16, "learning_rate": 0.003}


@pytest.fixture
def project(alice, client_for, tmp_path):
    client = client_for(alice)
    project_id, _, _ = digits_project(client, tmp_path)
    response = client.patch(f"/api/projects/{project_id}/", {"config": FAST}, format="json")
    assert response.status_code == 200, response.content
    return client, project_id


def start(client, project_id, **params):
    response = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "transfer_learning", "params": {
        "input_size": 32, **params}}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_config_is_validated_per_field(project):
    client, project_id = project
    response = client.patch(f"/api/projects/{project_id}/", {"config": {
        "optimizer": "rmsprop", "max_epoch": 0, "augmentation": "flip,zoom", "colour": 1}}, format="json")
    errors = response.json()["errors"]
    assert set(errors) == {"optimizer", "max_epoch", "augmentation", "colour"}
    assert client.get(f"/api/projects/{project_id}/").json()["config"]["max_epoch"] == 3  # unchanged
    schema = client.get("/api/projects/config-schema/").json()["results"]
    assert [p["name"] for p in schema][:4] == ["max_epoch", "batch_size", "optimizer", "learning_rate"]
    assert [p["label"] for p in schema][:4] == ["Epochs", "Batch size", "Optimizer", "Learning rate"]
    rate = schema[3]["help"]  # says that last_fc_only does not use it (its head is fitted by L-BFGS)
    assert "train_param all" in rate and "Not used by last_fc_only" in rate and "L-BFGS" in rate


def test_a_run_trains_evaluates_and_keeps_everything(project):
    client, project_id = project
    run = start(client, project_id)
    assert run["state"] == "queued" and run["config"]["max_epoch"] == 3
    run_job(run["job"])
    run = client.get(f"/api/runs/{run['id']}/").json()
    assert run["state"] == "succeeded", Job.objects.get(pk=run["job"]).message
    assert [h["epoch"] for h in run["history"]] == [1, 2, 3]
    metrics = run["metrics"]
    matrix = metrics["confusion_matrix"]
    assert sum(map(sum, matrix)) == 9  # every validation image counted once
    assert metrics["accuracy"] == pytest.approx(sum(matrix[i][i] for i in range(3)) / 9)
    served = json.loads(b"".join(client.get(f"/api/runs/{run['id']}/files/metrics.json").streaming_content))
    assert served["accuracy"] == metrics["accuracy"]
    result = b"".join(client.get(f"/api/runs/{run['id']}/files/output_result.csv").streaming_content).decode()
    assert result.splitlines()[0] == "x:image,y:label;0;1;2,y'__0,y'__1,y'__2"
    bundle = zipfile.ZipFile(io.BytesIO(b"".join(client.get(f"/api/runs/{run['id']}/bundle/").streaming_content)))
    assert sorted(bundle.namelist()) == [f"run{run['id']}-model/manifest.json",
                                         f"run{run['id']}-model/weights.safetensors"]
    assert client.get(f"/api/runs/{run['id']}/files/checkpoint.pt").status_code == 404
    assert client.get(f"/api/runs/{run['id']}/files/../../../secret").status_code == 404
    listed = client.get(f"/api/projects/{project_id}/runs/").json()["results"]
    assert [r["id"] for r in listed] == [run["id"]]
    assert (Run.objects.get(pk=run["id"]).folder() / "output_result.csv").exists()


def test_an_interrupted_run_resumes_from_its_checkpoint(project, monkeypatch):
    from nnc_web.jobs.context import JobContext

    client, project_id = project
    run = start(client, project_id)
    original = JobContext.metric

    def cancel_after_first_epoch(self, name, step, value):
        original(self, name, step, value)
        if name == "valid_error" and step == 1:
            Job.objects.filter(pk=self.job_id).update(cancel_requested=True)
            self._last_stop_poll = 0

    monkeypatch.setattr(JobContext, "metric", cancel_after_first_epoch)
    run_job(run["job"])
    monkeypatch.setattr(JobContext, "metric", original)
    assert client.get(f"/api/runs/{run['id']}/").json()["state"] == "cancelled"
    resumed = client.post(f"/api/runs/{run['id']}/resume/").json()
    assert resumed["job"] != run["job"]
    run_job(resumed["job"])
    finished = client.get(f"/api/runs/{run['id']}/").json()
    assert finished["state"] == "succeeded"
    assert [h["epoch"] for h in finished["history"]] == [1, 2, 3]
    log = [e.data["line"] for e in Job.objects.get(pk=resumed["job"]).events.filter(kind="log").order_by("seq")]
    assert "resuming after epoch 1 from the checkpoint" in log
    again = client.post(f"/api/runs/{run['id']}/resume/")
    assert again.status_code == 400 and "has finished" in again.json()["detail"]


def test_runs_need_datasets_and_available_weights(alice, client_for, project):
    client, project_id = project
    bare = client.post("/api/projects/", {"name": "empty"}, format="json").json()
    response = client.post(f"/api/projects/{bare['id']}/runs/", {"plugin": "transfer_learning"}, format="json")
    assert set(response.json()["errors"]) == {"train_dataset", "valid_dataset"}
    missing = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "transfer_learning", "params": {
        "model": "resnet50"}}, format="json")
    message = missing.json()["errors"]["model"][0]
    assert message == ("the weights of resnet50 are not on this machine (ask your administrator to import the "
                       "weights, or choose a model whose weights are here)")  # no server command for a non-staff user
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    staff = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "transfer_learning", "params": {
        "model": "resnet50"}}, format="json")
    assert staff.json()["errors"]["model"] == [
        "the weights of resnet50 are not on this machine (manage.py import_weights resnet50 <file>)"]
    wrong = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "image_classification"}, format="json")
    assert "plugin" in wrong.json()["errors"]


def test_other_users_get_404_on_projects_and_runs(project, bob, client_for):
    client, project_id = project
    run = start(client, project_id)
    other = client_for(bob)
    for method, url in (("get", f"/api/projects/{project_id}/runs/"), ("post", f"/api/projects/{project_id}/runs/"),
                        ("patch", f"/api/projects/{project_id}/"), ("get", f"/api/runs/{run['id']}/"),
                        ("post", f"/api/runs/{run['id']}/resume/"), ("get", f"/api/runs/{run['id']}/bundle/"),
                        ("get", f"/api/runs/{run['id']}/files/metrics.json")):
        assert getattr(other, method)(url).status_code == 404, url
        assert getattr(client_for(None), method)(url).status_code in (401, 403), url
    assert Run.objects.filter(pk=run["id"]).exists()


def test_resnet50_builtin_uses_easymaker_hyperparameters(project, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("NNC_MODEL_DIR", str(tmp_path / "models"))
    client, project_id = project
    refused = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "resnet50_classification"}, format="json")
    assert "ask your administrator to import the weights" in refused.json()["errors"]["pretrained"][0]
    response = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "resnet50_classification", "params": {
        "pretrained": False, "input_size": 32, "num_train_epochs": 1, "per_device_train_batch_size": 8,
        "logging_steps": 2}}, format="json")
    assert response.status_code == 201, response.content
    run_job(response.json()["job"])
    run = client.get(f"/api/runs/{response.json()['id']}/").json()
    assert run["state"] == "succeeded" and len(run["history"]) == 1
    log = [e.data["line"] for e in Job.objects.get(pk=run["job"]).events.filter(kind="log").order_by("seq")]
    assert "step 2: loss" in " ".join(log) and any("training resnet50 (all)" in line for line in log)
    assert (Run.objects.get(pk=run["id"]).folder() / "model" / "manifest.json").exists()


def test_exports_load_and_agree_with_the_model(project, tmp_path):
    import torch

    from nnc_web.engine.training.bundle import load_bundle

    client, project_id = project
    run = start(client, project_id)
    run_job(run["job"])
    folder = Run.objects.get(pk=run["id"]).folder() / "model"
    model, _ = load_bundle(folder)
    response = client.get(f"/api/runs/{run['id']}/export/?to=torchscript")
    assert response.status_code == 200, response.content
    (tmp_path / "m.pt").write_bytes(b"".join(response.streaming_content))
    scripted = torch.jit.load(str(tmp_path / "m.pt"))
    batch = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(scripted(batch), model(batch), atol=1e-5)
    onnx_file = client.get(f"/api/runs/{run['id']}/export/?to=onnx")
    assert onnx_file.status_code == 200, onnx_file.content
    import onnx

    graph = onnx.load_from_string(b"".join(onnx_file.streaming_content))
    assert [i.name for i in graph.graph.input] == ["image"]
    assert client.get(f"/api/runs/{run['id']}/export/?to=pickle").status_code == 400


def tabular_project(client, tmp_path, target: str, task: str) -> int:
    from tests.api.test_tabular_api import iris_csv

    source = upload(client, iris_csv(tmp_path)).json()["id"]
    job = client.post("/api/jobs/", {"plugin": "tabular_csv", "params": {
        "source": source, "target": target, "task": task, "missing": "fill", "inputs":
        "sepal length (cm),sepal width (cm),petal width (cm),site" + (",species" if task == "regression" else ""),
        "ratio1": 70, "ratio2": 30, "file2": "valid"}}, format="json").json()
    run_job(job["id"])
    train_id, valid_id = (d["id"] for d in client.get(f"/api/jobs/{job['id']}/").json()["datasets"])
    project = client.post("/api/projects/", {"name": f"iris-{task}", "train_dataset": train_id,
                                             "valid_dataset": valid_id}, format="json").json()
    client.patch(f"/api/projects/{project['id']}/", {"config": {"max_epoch": 60, "batch_size": 16,
                                                                "learning_rate": 0.01}}, format="json")
    return project["id"]


def test_tabular_mlp_classifies_and_regresses_real_data(alice, client_for, tmp_path):
    import numpy as np

    from nnc_web.engine.training.tabular_mlp import load_tabular_bundle, load_tabular_csv, predict_tabular

    client = client_for(alice)
    for target, task in (("species", "classification"), ("petal length (cm)", "regression")):
        (tmp_path / task).mkdir()
        project_id = tabular_project(client, tmp_path / task, target, task)
        run = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "tabular_mlp"}, format="json").json()
        run_job(run["job"])
        run = client.get(f"/api/runs/{run['id']}/").json()
        assert run["state"] == "succeeded", Job.objects.get(pk=run["job"]).message
        stats = client.post(f"/api/runs/{run['id']}/postprocess/", {"plugin": "parameter_stats"}, format="json")
        run_job(stats.json()["job"])
        from safetensors.numpy import load_file

        folder = Run.objects.get(pk=run["id"]).folder()
        tensors = load_file(folder / "model" / "weights.safetensors")
        table = list(csv.DictReader(open(folder / "parameter_stats.csv")))
        assert [r["name"] for r in table] == list(tensors)  # the tabular MLP's bundle, every tensor
        assert all(float(r["mean"]) == pytest.approx(tensors[r["name"]].astype(np.float64).mean()) for r in table)
        rows = client.get(f"/api/runs/{run['id']}/results/").json()
        if task == "classification":
            assert run["metrics"]["accuracy"] >= 0.9, run["metrics"]
            assert rows["total"] == 45 and "values" in rows["rows"][0] and "image" not in rows["rows"][0]
            wrong = client.get(f"/api/runs/{run['id']}/results/?misclassified=1").json()["total"]
            assert wrong == round(45 * (1 - run["metrics"]["accuracy"]))
        else:
            assert run["metrics"]["r2"] >= 0.8, run["metrics"]
            assert rows["regression"] and rows["total"] == 45
        folder = Run.objects.get(pk=run["id"]).folder()
        model, manifest = load_tabular_bundle(folder / "model")
        valid = load_tabular_csv(Run.objects.get(pk=run["id"]).valid_dataset.csv_path())
        written = np.loadtxt(folder / "output_result.csv", delimiter=",", skiprows=1,
                             usecols=range(len(valid.header), len(valid.header) + manifest["outputs"]), ndmin=2)
        assert np.allclose(predict_tabular(model, valid), written, atol=1e-4)


def test_evaluate_again_rewrites_the_results(project):
    client, project_id = project
    run = start(client, project_id)
    run_job(run["job"])
    folder = Run.objects.get(pk=run["id"]).folder()
    (folder / "output_result.csv").unlink()
    before = client.get(f"/api/runs/{run['id']}/").json()["metrics"]
    job = client.post(f"/api/runs/{run['id']}/evaluate/").json()
    second = client.post(f"/api/runs/{run['id']}/evaluate/")  # a second click while the first is queued
    assert second.status_code == 400 and "being trained or evaluated" in second.json()["detail"]
    run_job(job["id"])
    assert Job.objects.get(pk=job["id"]).state == "succeeded"
    assert (folder / "output_result.csv").exists()
    assert client.get(f"/api/runs/{run['id']}/").json()["metrics"]["accuracy"] == before["accuracy"]
    listed = [p["id"] for p in client.get("/api/plugins/").json()["results"]]
    assert "evaluation" not in listed and "transfer_learning" in listed
    direct = client.post("/api/jobs/", {"plugin": "evaluation"}, format="json")
    assert direct.status_code == 400
    training = client.post("/api/jobs/", {"plugin": "transfer_learning"}, format="json")
    assert "inside a project" in training.json()["errors"]["plugin"][0]
