"""Managing projects and runs through the API: the config a run uses, the settings each training
plugin reads, resume only with a checkpoint, rename and delete (cancelling what still runs), and
deleting a dataset that projects and runs use."""
from __future__ import annotations

import dataclasses

import pytest

from nnc_web.jobs.context import JobContext
from nnc_web.jobs.models import Job
from nnc_web.jobs.services import run_job
from nnc_web.projects.models import Project, Run
from tests.api.helpers import digits_project, upload

pytestmark = pytest.mark.django_db
FAST = {"max_epoch": 2, "batch_size": 16, "learning_rate": 0.003}


@pytest.fixture
def project(alice, client_for, tmp_path):
    client = client_for(alice)
    project_id, train_id, valid_id = digits_project(client, tmp_path, per_class=8)
    assert client.patch(f"/api/projects/{project_id}/", {"config": FAST}, format="json").status_code == 200
    return client, project_id, train_id, valid_id


def start(client, project_id: int, plugin: str = "transfer_learning", **body) -> dict:
    params = body.pop("params", {"input_size": 32} if plugin == "transfer_learning" else {})
    response = client.post(f"/api/projects/{project_id}/runs/", {"plugin": plugin, "params": params, **body},
                           format="json")
    assert response.status_code == 201, response.content
    return response.json()


# -- the settings a run uses --------------------------------------------------------------------

EXPECTED_FIELDS = {
    "transfer_learning": {"max_epoch", "batch_size", "optimizer", "learning_rate", "schedule", "augmentation",
                          "save_best", "seed", "device", "devices", "nodes"},
    "resnet50_classification": {"seed", "device"},
    "padim": {"batch_size", "seed", "device"},
    "patchcore": {"batch_size", "seed", "device"},
    "tabular_mlp": {"max_epoch", "batch_size", "learning_rate", "seed"},
}


def test_each_training_plugin_says_which_config_settings_apply(alice, client_for):
    client = client_for(alice)
    schema = {p["name"] for p in client.get("/api/projects/config-schema/").json()["results"]}
    plugins = {p["id"]: p for p in client.get("/api/plugins/?kind=training").json()["results"]
               if p["kind"] == "training"}
    assert set(EXPECTED_FIELDS) <= set(plugins)
    for plugin_id, plugin in plugins.items():
        assert plugin["config_fields"] is not None, f"{plugin_id} must declare its config_fields"
        assert set(plugin["config_fields"]) <= schema, plugin_id
    for plugin_id, fields in EXPECTED_FIELDS.items():
        assert set(plugins[plugin_id]["config_fields"]) == fields, plugin_id


class ReadRecorder(dict):
    """A run's config that remembers which settings the plugin read."""

    read: set[str]

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


@pytest.fixture
def recorded(monkeypatch):
    """Every training job from now on reads its config through a ReadRecorder; returns them by run."""
    from nnc_web.projects import inputs

    records: dict[int, ReadRecorder] = {}
    original = inputs.run_inputs

    def recording(run):
        resolved = original(run)
        config = ReadRecorder(resolved.config)
        config.read = set()
        records[run.pk] = config
        return dataclasses.replace(resolved, config=config)

    monkeypatch.setattr(inputs, "run_inputs", recording)
    return records


def test_config_fields_are_exactly_what_each_plugin_reads(project, recorded, alice, client_for, tmp_path):
    """The form hides the other settings, so a plugin must read exactly the ones it declares."""
    from nnc_web.plugins.registry import PLUGINS
    from tests.api.test_training_api import tabular_project
    from tests.sample_data import write_mvtec_zip

    client, project_id, _, _ = project
    runs = {"transfer_learning": start(client, project_id),
            "resnet50_classification": start(client, project_id, "resnet50_classification", params={
                "pretrained": False, "input_size": 32, "num_train_epochs": 1, "per_device_train_batch_size": 8})}
    source = upload(client, write_mvtec_zip(tmp_path / "brick.zip", train=6, good=3, bad=3, size=64)).json()["id"]
    job = client.post("/api/jobs/", {"plugin": "anomaly_detection_dataset", "params": {
        "source": source, "prefix": "brick_", "width": 64, "height": 64}}, format="json").json()
    run_job(job["id"])
    brick = {d["name"]: d["id"] for d in client.get(f"/api/jobs/{job['id']}/").json()["datasets"]}
    anomaly = client.post("/api/projects/", {"name": "brick", "train_dataset": brick["brick_train"],
                                             "valid_dataset": brick["brick_test"]}, format="json").json()["id"]
    runs["padim"] = start(client, anomaly, "padim", params={"input_size": 64, "gaussian": "single"})
    (tmp_path / "tabular").mkdir()
    tabular = tabular_project(client, tmp_path / "tabular", "species", "classification")
    runs["tabular_mlp"] = start(client, tabular, "tabular_mlp", config={"max_epoch": 3})
    for plugin_id, run in runs.items():
        run_job(run["job"])
        assert Job.objects.get(pk=run["job"]).state == "succeeded", (plugin_id, Job.objects.get(pk=run["job"]).message)
        assert recorded[run["id"]].read == set(PLUGINS[plugin_id].config_fields), plugin_id


def test_runs_list_shows_each_runs_own_settings(project):
    client, project_id, _, _ = project
    transfer = start(client, project_id)
    resnet = start(client, project_id, "resnet50_classification", params={
        "pretrained": False, "num_train_epochs": 5, "learning_rate": 0.02})
    listed = {r["id"]: r for r in client.get(f"/api/projects/{project_id}/runs/").json()["results"]}
    assert listed[transfer["id"]]["settings"] == {
        "model": "efficientnet_lite0", "train_param": "last_fc_only", "input_size": 32, "max_epoch": 2,
        "batch_size": 16, "optimizer": "adam", "learning_rate": 0.003, "schedule": "none", "augmentation": "",
        "save_best": True, "seed": 0, "device": "auto", "devices": "1", "nodes": ""}
    labels = listed[transfer["id"]]["setting_labels"]
    assert labels["max_epoch"] == "Epochs" and labels["save_best"] == "Keep the best epoch"  # the form's words
    assert set(labels) <= set(listed[transfer["id"]]["settings"])
    settings = listed[resnet["id"]]["settings"]
    assert settings["num_train_epochs"] == 5 and settings["learning_rate"] == 0.02  # its own, not the project's
    assert "max_epoch" not in settings and "optimizer" not in settings and settings["seed"] == 0


def test_a_run_saves_and_uses_the_config_it_was_sent_with(project):
    client, project_id, _, _ = project
    run = start(client, project_id, config={**FAST, "max_epoch": 7, "learning_rate": 0.05})
    assert run["config"]["max_epoch"] == 7 and run["config"]["learning_rate"] == 0.05
    assert client.get(f"/api/projects/{project_id}/").json()["config"]["max_epoch"] == 7  # saved, as shown
    runs_before = Run.objects.count()
    bad = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "transfer_learning", "params": {
        "input_size": 32}, "config": {"max_epoch": 0, "optimizer": "rmsprop"}}, format="json")
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"max_epoch", "optimizer"}
    half = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "transfer_learning", "params": {
        "input_size": 1}, "config": {"max_epoch": 9}}, format="json")  # the config is fine, a parameter is not
    assert half.status_code == 400 and set(half.json()["errors"]) == {"input_size"}
    assert Run.objects.count() == runs_before
    assert client.get(f"/api/projects/{project_id}/").json()["config"]["max_epoch"] == 7  # nothing saved
    not_an_object = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "transfer_learning",
                                                                      "config": [1]}, format="json")
    assert not_an_object.status_code == 400 and "config" in not_an_object.json()["errors"]


# -- resume ---------------------------------------------------------------------------------------

def test_resume_is_offered_only_when_there_is_a_checkpoint(project):
    client, project_id, train_id, _ = project
    run = start(client, project_id)
    assert run["can_resume"] is False  # queued
    client.post(f"/api/jobs/{run['job']}/cancel/")
    cancelled = client.get(f"/api/runs/{run['id']}/").json()
    assert cancelled["state"] == "cancelled" and cancelled["can_resume"] is False  # stopped before epoch 1
    refused = client.post(f"/api/runs/{run['id']}/resume/")
    assert refused.status_code == 400 and "no checkpoint" in refused.json()["detail"]
    folder = Run.objects.get(pk=run["id"]).folder()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "checkpoint.pt").write_bytes(b"an epoch's state")
    assert client.get(f"/api/runs/{run['id']}/").json()["can_resume"] is True
    assert client.delete(f"/api/datasets/{train_id}/").status_code == 204
    gone = client.get(f"/api/runs/{run['id']}/").json()
    assert gone["can_resume"] is False and gone["deleted_datasets"] == {"train_dataset": "train"}
    assert "was deleted" in client.post(f"/api/runs/{run['id']}/resume/").json()["detail"]


def test_a_finished_run_cannot_resume(project):
    client, project_id, _, _ = project
    run = start(client, project_id)
    run_job(run["job"])
    finished = client.get(f"/api/runs/{run['id']}/").json()
    assert finished["state"] == "succeeded" and (Run.objects.get(pk=run["id"]).folder() / "checkpoint.pt").exists()
    assert finished["can_resume"] is False


# -- names ---------------------------------------------------------------------------------------

def test_projects_are_renamed_and_taken_names_refused(project):
    client, project_id, _, _ = project
    other = client.post("/api/projects/", {"name": "other"}, format="json").json()
    taken = client.patch(f"/api/projects/{other['id']}/", {"name": "digits"}, format="json")
    assert taken.status_code == 400 and "already have a project" in taken.json()["errors"]["name"][0]
    bad = client.patch(f"/api/projects/{other['id']}/", {"name": "no spaces"}, format="json")
    assert bad.status_code == 400 and "name" in bad.json()["errors"]
    renamed = client.patch(f"/api/projects/{other['id']}/", {"name": "baseline"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "baseline"
    assert client.patch(f"/api/projects/{other['id']}/", {"name": "baseline"}, format="json").status_code == 200
    again = client.post("/api/projects/", {"name": "baseline"}, format="json")
    assert again.status_code == 400 and "already have a project" in again.json()["errors"]["name"][0]
    assert Project.objects.filter(name="baseline").count() == 1


def test_runs_get_unique_names_and_are_renamed(project):
    client, project_id, _, _ = project
    first = start(client, project_id)
    assert first["name"] == f"run {first['id']}"
    assert client.patch(f"/api/runs/{first['id']}/", {"name": f"run {first['id'] + 1}"},
                        format="json").status_code == 200  # the next run's default name is taken now
    second = start(client, project_id)
    assert second["id"] == first["id"] + 1 and second["name"] == f"run {second['id']} (2)"
    assert Job.objects.get(pk=second["job"]).title.endswith(second["name"])
    taken = client.patch(f"/api/runs/{second['id']}/", {"name": f"run {first['id'] + 1}"}, format="json")
    assert taken.status_code == 400 and "already has a run" in taken.json()["errors"]["name"][0]
    assert client.patch(f"/api/runs/{second['id']}/", {"name": "  "}, format="json").status_code == 400
    assert client.patch(f"/api/runs/{second['id']}/", {"name": "a/b"}, format="json").status_code == 400
    named = start(client, project_id, name="baseline lr 0.003")
    assert named["name"] == "baseline lr 0.003"
    refused = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "transfer_learning", "params": {
        "input_size": 32}, "name": "baseline lr 0.003"}, format="json")
    assert refused.status_code == 400 and "already has a run" in refused.json()["errors"]["name"][0]
    other = client.post("/api/projects/", {"name": "other"}, format="json").json()
    assert Project.objects.get(pk=other["id"]).runs.count() == 0  # names are per project


# -- deletion ------------------------------------------------------------------------------------

def test_deleting_a_running_run_cancels_it_and_frees_its_folder(project, monkeypatch):
    client, project_id, _, _ = project
    run = start(client, project_id, config={"max_epoch": 4})
    folder = Run.objects.get(pk=run["id"]).folder()
    original = JobContext.metric
    seen: dict = {}

    def delete_mid_run(self, name, step, value):
        original(self, name, step, value)
        if name == "valid_error" and step == 2 and not seen:  # epoch 1 has its checkpoint
            seen["files"] = sorted(p.name for p in folder.iterdir())
            assert client.delete(f"/api/runs/{run['id']}/").status_code == 204  # the user deletes it mid-run
            seen["after_delete"] = folder.exists()
            self._last_stop_poll = 0

    monkeypatch.setattr(JobContext, "metric", delete_mid_run)
    run_job(run["job"])
    job = Job.objects.get(pk=run["job"])
    assert "checkpoint.pt" in seen["files"] and seen["after_delete"] is False
    assert job.state == "cancelled" and job.discard_results
    assert not folder.exists()  # whatever the job wrote after the delete went with it
    assert not Run.objects.filter(pk=run["id"]).exists()
    assert client.get(f"/api/runs/{run['id']}/").status_code == 404


def test_deleting_a_project_cancels_its_queued_runs_and_removes_everything(project):
    client, project_id, _, _ = project
    done = start(client, project_id)
    run_job(done["job"])
    queued = start(client, project_id)
    folder = Project.objects.get(pk=project_id).folder()
    assert (folder / "results" / str(done["id"]) / "model" / "manifest.json").exists()
    assert client.delete(f"/api/projects/{project_id}/").status_code == 204
    assert Job.objects.get(pk=queued["job"]).state == "cancelled"
    assert Job.objects.get(pk=done["job"]).state == "succeeded"  # finished jobs stay as they were
    assert not folder.exists() and not Run.objects.filter(project_id=project_id).exists()
    run_job(queued["job"])  # a worker that got it anyway does nothing
    assert not folder.exists()


def test_dataset_usage_then_deletion_marks_the_projects_and_runs(project):
    client, project_id, train_id, valid_id = project
    run = start(client, project_id)
    other = client.post("/api/projects/", {"name": "other", "valid_dataset": train_id}, format="json").json()
    usage = client.get(f"/api/datasets/{train_id}/usage/").json()
    assert usage["projects"] == [{"id": project_id, "name": "digits", "as": ["training"]},
                                 {"id": other["id"], "name": "other", "as": ["validation"]}]
    assert usage["runs"] == [{"id": run["id"], "name": run["name"], "project": {"id": project_id, "name": "digits"},
                              "as": ["training"], "state": "queued"}]
    assert client.get(f"/api/datasets/{valid_id}/usage/").json()["projects"][0]["as"] == ["validation"]

    assert client.delete(f"/api/datasets/{train_id}/").status_code == 204
    assert Job.objects.get(pk=run["job"]).state == "cancelled"  # it would have failed reading it
    page = client.get(f"/api/projects/{project_id}/").json()
    assert page["train_dataset"] is None and page["deleted_datasets"] == {"train_dataset": "train"}
    assert client.get(f"/api/projects/{other['id']}/").json()["deleted_datasets"] == {"valid_dataset": "train"}
    shown = client.get(f"/api/runs/{run['id']}/").json()
    assert shown["train_dataset"] is None and shown["deleted_datasets"] == {"train_dataset": "train"}
    assert shown["valid_dataset"] == valid_id
    chosen = client.patch(f"/api/projects/{project_id}/", {"train_dataset": valid_id}, format="json").json()
    assert chosen["deleted_datasets"] == {}  # a new choice replaces the note
    unused = client.get(f"/api/datasets/{valid_id}/usage/").json()
    assert [p["name"] for p in unused["projects"]] == ["digits"]
