"""Sources from server folders (NNC_IMPORT_DIRS) instead of uploads."""
from __future__ import annotations

import pytest

from nnc_web.datasets.models import Dataset
from nnc_web.jobs.models import Job
from nnc_web.jobs.services import run_job
from tests.sample_data import digit_images, write_class_zip

pytestmark = pytest.mark.django_db


@pytest.fixture
def shared(tmp_path, settings):
    root = tmp_path / "shared"
    for label, images in digit_images(4, 2).items():
        (root / "digits" / label).mkdir(parents=True)
        for i, image in enumerate(images):
            image.save(root / "digits" / label / f"{i}.png")
    write_class_zip(root / "digits.zip", digit_images(3, 2))
    (root / "notes.txt").write_text("not offered")
    (tmp_path / "secret").mkdir()
    (root / "escape").symlink_to(tmp_path / "secret")
    settings.NNC_IMPORT_DIRS = [str(root)]
    return root


def queue(client, value):
    return client.post("/api/jobs/", {"plugin": "image_classification",
                                      "params": {"source": {"import": value}, "width": 8, "height": 8}},
                       format="json")


def test_listing_shows_roots_and_usable_entries(shared, alice, client_for):
    client = client_for(alice)
    assert client.get("/api/imports/").json()["entries"] == [{"path": "shared", "name": "shared", "kind": "folder"}]
    entries = client.get("/api/imports/?path=shared").json()["entries"]
    assert [(e["name"], e["kind"]) for e in entries] == [("digits", "folder"), ("digits.zip", "file")]
    assert client.get("/api/imports/?path=shared/../..").status_code == 400
    assert client_for(None).get("/api/imports/").status_code in (401, 403)


@pytest.mark.parametrize("value", ["shared/digits", "shared/digits.zip"])
def test_a_server_folder_or_archive_feeds_the_plugin(shared, alice, client_for, value):
    response = queue(client_for(alice), value)
    assert response.status_code == 201, response.content
    run_job(response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    assert job.state == "succeeded" and Dataset.objects.get(job=job).class_names == ["0", "1"]
    assert (shared / "digits" / "0" / "0.png").exists()  # the server's data is left untouched


@pytest.mark.parametrize("value,message", [
    ("shared/../secret", "path escapes its folder"), ("shared/escape", "path escapes its folder"),
    ("other/x", "no such server folder"), ("shared/notes.txt", "choose a folder, an archive or a CSV file"),
    ("shared/missing", "does not exist"),
])
def test_paths_outside_the_configured_folders_are_refused(shared, alice, client_for, value, message):
    response = queue(client_for(alice), value)
    assert response.status_code == 400 and message in response.json()["errors"]["source"][0]


def test_nothing_is_offered_when_not_configured(alice, client_for, settings):
    settings.NNC_IMPORT_DIRS = []
    assert client_for(alice).get("/api/imports/").json()["entries"] == []
    assert "no such server folder" in queue(client_for(alice), "shared/x").json()["errors"]["source"][0]
