"""The Jobs page's API (every job of the user, newest first, paged, with what each worked on) and the
admin console's job page (read-only state, progress and owner; the log shown)."""
from __future__ import annotations

import pytest

from nnc_web.jobs import services
from nnc_web.jobs.events import record_event
from nnc_web.jobs.models import Job
from nnc_web.plugins import registry
from tests.api.helpers import create_dataset, digits_project

pytestmark = pytest.mark.django_db


def plain_job(user, plugin_id: str = "image_classification", **fields) -> Job:
    return Job.objects.create(owner=user, kind=registry.PLUGINS[plugin_id].kind, plugin_id=plugin_id, **fields)


def test_jobs_are_listed_newest_first_in_pages(alice, bob, client_for):
    jobs = [plain_job(alice, title=f"job {i}") for i in range(5)]
    plain_job(bob)
    client = client_for(alice)
    first = client.get("/api/jobs/?limit=2").json()
    assert [j["id"] for j in first["results"]] == [jobs[4].pk, jobs[3].pk] and first["next"] == jobs[3].pk
    second = client.get(f"/api/jobs/?limit=2&before={first['next']}").json()
    assert [j["id"] for j in second["results"]] == [jobs[2].pk, jobs[1].pk]
    last = client.get(f"/api/jobs/?limit=2&before={second['next']}").json()
    assert [j["id"] for j in last["results"]] == [jobs[0].pk] and last["next"] is None
    assert client.get("/api/jobs/?before=x").status_code == 400
    assert len(client.get("/api/jobs/").json()["results"]) == 5  # never bob's


def test_each_job_says_what_it_worked_on(alice, client_for, tmp_path):
    client = client_for(alice)
    project_id, train_id, _ = digits_project(client, tmp_path, per_class=4)
    conversion = Job.objects.filter(owner=alice, plugin_id="image_classification").get()
    run = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "transfer_learning"}, format="json").json()
    csv_name = client.get(f"/api/datasets/{train_id}/csvs/").json()["results"][0]["name"]
    on_dataset = client.post(f"/api/datasets/{train_id}/postprocess/", {"plugin": "tile_images", "params": {
        "input": csv_name}}, format="json").json()
    listed = {j["id"]: j for j in client.get("/api/jobs/").json()["results"]}
    assert listed[conversion.pk]["target"] is None
    assert [d["name"] for d in listed[conversion.pk]["datasets"]] == ["train", "valid"]
    assert listed[run["job"]]["target"] == {"kind": "run", "id": run["id"], "name": run["name"],
                                            "project": "digits", "deleted": False}
    assert listed[run["job"]]["kind"] == "training" and listed[run["job"]]["plugin_id"] == "transfer_learning"
    assert listed[on_dataset["job"]]["target"] == {"kind": "dataset", "id": train_id, "name": "train",
                                                   "deleted": False}
    assert client.get(f"/api/jobs/{run['job']}/").json()["target"]["name"] == run["name"]  # the detail too
    client.delete(f"/api/runs/{run['id']}/")
    client.delete(f"/api/datasets/{train_id}/")
    listed = {j["id"]: j for j in client.get("/api/jobs/").json()["results"]}
    assert listed[run["job"]]["state"] == "cancelled" and listed[run["job"]]["target"]["deleted"] is True
    assert listed[on_dataset["job"]]["state"] == "cancelled" and listed[on_dataset["job"]]["target"]["deleted"]
    assert [d["name"] for d in listed[conversion.pk]["datasets"]] == ["valid"]


@pytest.fixture
def staff_client(make_user, client_for):
    return client_for(make_user("staff", is_staff=True, is_superuser=True))


def test_admin_shows_the_log_and_keeps_state_progress_and_owner_read_only(staff_client, alice, bob):
    job = plain_job(alice, state="running", progress_done=3, progress_total=10, title="digits")
    record_event(job.pk, "log", {"line": "found 10 images"})
    record_event(job.pk, "log", {"line": "<script>alert(1)</script>"})
    page = staff_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert "found 10 images" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
    for field in ("state", "progress_done", "progress_total", "owner", "message"):
        assert f'name="{field}"' not in page, field  # shown, not editable
    assert 'name="title"' in page
    response = staff_client.post(f"/admin/jobs/job/{job.pk}/change/", {
        "title": "renamed", "state": "succeeded", "progress_done": 10, "owner": bob.pk})
    assert response.status_code == 302, response.content.decode()[-2000:]
    job.refresh_from_db()
    assert (job.title, job.state, job.progress_done, job.owner_id) == ("renamed", "running", 3, alice.pk)
    assert staff_client.get("/admin/jobs/job/add/").status_code == 403  # jobs come from running plugins


def test_admin_cancel_still_works_on_a_read_only_job(staff_client, alice, tmp_path, client_for):
    job, _ = create_dataset(client_for(alice), tmp_path)
    queued = services.create_job(alice, registry.PLUGINS["image_classification"], job.params, send=False)
    response = staff_client.post("/admin/jobs/job/", {"action": "cancel_jobs", "_selected_action": [queued.pk]})
    assert response.status_code == 302
    queued.refresh_from_db()
    assert queued.state == "cancelled"
    page = staff_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert "worker done" in page  # a finished job's whole log
