"""Two-user permission matrix: every endpoint and verb answers 404 for another user's objects and
401/403 for anonymous callers; nothing of the owner's changes."""
from __future__ import annotations

import pytest

from nnc_web.datasets.models import Dataset, Upload
from nnc_web.jobs.models import Job
from nnc_web.projects.models import Project, Run
from tests.api.helpers import create_dataset, digits_zip, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices_things(alice, client_for, tmp_path):
    client = client_for(alice)
    job, (train_id, valid_id) = create_dataset(client, tmp_path)
    upload_id = upload(client, digits_zip(tmp_path / "..")).json()["id"]
    project = client.post("/api/projects/", {"name": "p1", "train_dataset": train_id, "valid_dataset": valid_id},
                          format="json").json()
    run = client.post(f"/api/projects/{project['id']}/runs/", {"plugin": "transfer_learning"}, format="json").json()
    first_file = client.get(f"/api/datasets/{train_id}/rows/").json()["rows"][0]["cells"][0][2:]
    return {"job": job.pk, "dataset": train_id, "upload": upload_id, "project": project["id"], "file": first_file,
            "run": run["id"]}


def object_endpoints(t: dict) -> list[tuple[str, str]]:
    d = t["dataset"]
    return [
        ("get", f"/api/uploads/{t['upload']}/"),
        ("delete", f"/api/uploads/{t['upload']}/"),
        ("put", f"/api/uploads/{t['upload']}/chunk/?offset=0"),
        ("post", f"/api/uploads/{t['upload']}/finish/"),
        ("get", f"/api/datasets/{d}/"),
        ("delete", f"/api/datasets/{d}/"),
        ("get", f"/api/datasets/{d}/rows/"),
        ("get", f"/api/datasets/{d}/files/{t['file']}"),
        ("get", f"/api/datasets/{d}/files/{t['file']}?thumb=1"),
        ("get", f"/api/datasets/{d}/files/{t['file']}?overlay=1"),
        ("get", f"/api/datasets/{d}/download/"),
        ("get", f"/api/datasets/{d}/usage/"),
        ("get", f"/api/datasets/{d}/postprocess/"),
        ("post", f"/api/datasets/{d}/postprocess/"),
        ("get", f"/api/datasets/{d}/csvs/"),
        ("get", f"/api/datasets/{d}/table/"),
        ("post", f"/api/datasets/{d}/table/save/"),
        ("get", f"/api/datasets/{d}/image/?path={t['file']}"),
        ("get", f"/api/datasets/{d}/image/?path={t['file']}&thumb=1"),
        ("get", f"/api/jobs/{t['job']}/"),
        ("get", f"/api/jobs/{t['job']}/events/"),
        ("post", f"/api/jobs/{t['job']}/cancel/"),
        ("get", f"/api/projects/{t['project']}/"),
        ("patch", f"/api/projects/{t['project']}/"),
        ("delete", f"/api/projects/{t['project']}/"),
        ("get", f"/api/runs/{t['run']}/"),
        ("patch", f"/api/runs/{t['run']}/"),
        ("delete", f"/api/runs/{t['run']}/"),
    ]


COLLECTIONS = [("get", "/api/uploads/"), ("post", "/api/uploads/?filename=a.zip"), ("post", "/api/uploads/start/"), ("get", "/api/datasets/"),
               ("get", "/api/jobs/"), ("post", "/api/jobs/"), ("get", "/api/projects/"),
               ("post", "/api/projects/"), ("get", "/api/plugins/"), ("get", "/api/imports/"), ("post", "/api/auth/password/"),
               ("post", "/api/auth/token/"), ("delete", "/api/auth/token/")]


def test_owner_can_use_every_endpoint(alices_things, alice, client_for):
    client = client_for(alice)
    for method, url in object_endpoints(alices_things):
        if method == "get":
            assert client.get(url).status_code == 200, url


def test_other_user_gets_404_everywhere_and_changes_nothing(alices_things, bob, client_for):
    client = client_for(bob)
    for method, url in object_endpoints(alices_things):
        response = getattr(client, method)(url)
        assert response.status_code == 404, (method, url, response.status_code)
        if response.get("Content-Type", "").startswith("application/json"):
            assert response.json()["detail"] == "not found"
    assert Dataset.objects.filter(pk=alices_things["dataset"]).exists()
    assert Upload.objects.filter(pk=alices_things["upload"]).exists()
    assert Project.objects.filter(pk=alices_things["project"], name="p1").exists()
    assert Run.objects.filter(pk=alices_things["run"], name=f"run {alices_things['run']}").exists()
    assert not Job.objects.get(pk=alices_things["job"]).cancel_requested
    assert not Job.objects.filter(runs__pk=alices_things["run"], cancel_requested=True).exists()


def test_other_users_lists_are_empty(alices_things, bob, client_for):
    client = client_for(bob)
    for url in ("/api/uploads/", "/api/datasets/", "/api/jobs/", "/api/projects/"):
        assert client.get(url).json()["results"] == [], url


def test_other_user_cannot_use_my_objects_as_inputs(alices_things, bob, client_for):
    client = client_for(bob)
    job = client.post("/api/jobs/", {"plugin": "image_classification",
                                     "params": {"source": alices_things["upload"]}}, format="json")
    assert job.status_code == 400 and job.json()["errors"]["source"] == ["no such upload"]
    project = client.post("/api/projects/", {"name": "mine", "train_dataset": alices_things["dataset"]},
                          format="json")
    assert project.status_code == 400 and project.json()["errors"]["train_dataset"] == ["no such dataset"]


def test_anonymous_is_refused_everywhere(alices_things, client_for):
    client = client_for(None)
    for method, url in object_endpoints(alices_things) + COLLECTIONS:
        response = getattr(client, method)(url)
        assert response.status_code in (401, 403), (method, url, response.status_code)
    assert Dataset.objects.filter(pk=alices_things["dataset"]).exists()


# -- endpoints (nnc_web.serving) -------------------------------------------------------------------------
@pytest.fixture
def alices_endpoint(alice, client_for, tmp_path, monkeypatch):
    import shutil

    from nnc_web.engine.training.bundle import save_bundle
    from nnc_web.engine.training.model import TransferClassifier
    from nnc_web.serving import services
    from nnc_web.serving.inline import InlineTransport

    monkeypatch.setattr(services, "transport", lambda: InlineTransport(runtime="torch"))
    project = Project.objects.create(owner=alice, name="served")
    run = Run.objects.create(project=project, plugin_id="transfer_learning", name="run 1")
    save_bundle(tmp_path / "model", TransferClassifier("efficientnet_lite0", 2, pretrained=False), "efficientnet_lite0",
                ["a", "b"], 32, {}, {})
    shutil.copytree(tmp_path / "model", run.folder() / "model")
    client = client_for(alice)
    endpoint = client.post("/api/endpoints/", {"run": run.pk, "name": "mine"}, format="json").json()
    token = client.post(f"/api/endpoints/{endpoint['id']}/tokens/", {"name": "cam"}, format="json").json()
    return {"endpoint": endpoint["id"], "token": token["id"], "run": run.pk}


def endpoint_urls(t: dict) -> list[tuple[str, str]]:
    e = t["endpoint"]
    return [("get", f"/api/endpoints/{e}/"), ("patch", f"/api/endpoints/{e}/"), ("delete", f"/api/endpoints/{e}/"),
            ("post", f"/api/endpoints/{e}/start/"), ("post", f"/api/endpoints/{e}/stop/"),
            ("get", f"/api/endpoints/{e}/tokens/"), ("post", f"/api/endpoints/{e}/tokens/"),
            ("delete", f"/api/endpoints/{e}/tokens/{t['token']}/"), ("post", f"/api/endpoints/{e}/predict/"),
            ("get", f"/api/runs/{t['run']}/model-repository/")]


def test_other_user_can_neither_read_call_nor_change_an_endpoint(alices_endpoint, bob, client_for):
    import shutil

    from rest_framework.test import APIClient

    from nnc_web.serving.models import Endpoint, EndpointToken

    client = client_for(bob)
    for method, url in endpoint_urls(alices_endpoint):
        response = getattr(client, method)(url, {"name": "stolen", "state": "stopped", "instances": [{"data": "x"}]},
                                           format="json")
        assert response.status_code == 404, (method, url, response.status_code)
        assert response.json() == {"detail": "not found", "errors": {}}
    assert client.get("/api/endpoints/").json()["results"] == []
    assert client.get(f"/api/endpoints/?run={alices_endpoint['run']}").json()["results"] == []
    taken = client.post("/api/endpoints/", {"run": alices_endpoint["run"], "name": "x"}, format="json")
    assert taken.status_code == 400 and taken.json()["errors"]["run"] == ["no such run"]
    # bob's own endpoint token does not open alice's endpoint either
    project = Project.objects.create(owner=bob, name="bobs")
    run = Run.objects.create(project=project, plugin_id="transfer_learning", name="run 1")
    shutil.copytree(Run.objects.get(pk=alices_endpoint["run"]).folder() / "model", run.folder() / "model")
    own = client.post("/api/endpoints/", {"run": run.pk, "name": "bobs"}, format="json").json()
    bobs_token = client.post(f"/api/endpoints/{own['id']}/tokens/").json()["token"]
    device = APIClient()
    called = device.post(f"/api/endpoints/{alices_endpoint['endpoint']}/predict/", {"instances": [{"data": "x"}]},
                         format="json", HTTP_AUTHORIZATION=f"Bearer {bobs_token}")
    assert called.status_code == 404
    endpoint = Endpoint.objects.get(pk=alices_endpoint["endpoint"])
    assert (endpoint.name, endpoint.state) == ("mine", "running")
    assert EndpointToken.objects.filter(pk=alices_endpoint["token"]).exists()


def test_owner_reads_and_anonymous_is_refused_on_endpoints(alices_endpoint, alice, client_for):
    owner = client_for(alice)
    for method, url in endpoint_urls(alices_endpoint):
        if method == "get":
            assert owner.get(url).status_code == 200, url
    anonymous = client_for(None)
    for method, url in endpoint_urls(alices_endpoint) + [("get", "/api/endpoints/"), ("post", "/api/endpoints/")]:
        response = getattr(anonymous, method)(url)
        assert response.status_code in (401, 403), (method, url, response.status_code)
