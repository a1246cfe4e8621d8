"""Bad input is a 400 in the usual error shape, never a 500: bodies that are not JSON objects,
numbers that are not finite or not whole, booleans and floats where ids belong."""
from __future__ import annotations

import json

import pytest

from nnc_web.jobs.models import Job
from tests.api.helpers import create_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(alice, client_for):
    return client_for(alice)


@pytest.mark.parametrize("body", ["false", "[null]", '"a string"', "3", "null"])
@pytest.mark.parametrize("url", ["/api/jobs/", "/api/uploads/start/", "/api/projects/"])
def test_a_body_that_is_not_an_object_is_a_400(client, url, body):
    response = client.post(url, data=body, content_type="application/json")
    assert response.status_code == 400, (url, body, response.content)
    assert response.json()["detail"] == "the request body must be a JSON object of fields"


@pytest.mark.parametrize("value", ["inf", "-inf", "1e400", "nan", "NaN", 1e308 * 10])
def test_numbers_must_be_finite(client, value):
    response = client.post("/api/jobs/", data=json.dumps({"plugin": "image_classification", "params": {
        "source": 1, "width": value, "ratio1": value}}).replace("Infinity", "1e400"),
        content_type="application/json")
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert errors["width"] == ["must be a finite number"] and errors["ratio1"] == ["must be a finite number"]
    assert not Job.objects.exists()


def test_ids_are_whole_numbers_not_booleans_or_floats(client, tmp_path):
    create_dataset(client, tmp_path)  # upload 1 and datasets exist: `true` must not pick them
    job = client.post("/api/jobs/", {"plugin": "image_classification", "params": {"source": True}}, format="json")
    assert job.status_code == 400 and job.json()["errors"]["source"] == ["choose an uploaded file"]
    size = client.post("/api/uploads/start/", {"filename": "a.zip", "size": 1.5}, format="json")
    assert size.status_code == 400 and "whole number" in size.json()["errors"]["size"][0]
    for value in (True, 1.0, 1e300, "1e400"):
        project = client.post("/api/projects/", {"name": f"p{abs(hash(str(value)))}", "train_dataset": value},
                              format="json")
        assert project.status_code == 400 and project.json()["errors"]["train_dataset"] == ["no such dataset"]


def test_run_params_must_be_an_object_and_rates_in_range(client, tmp_path):
    _, (train_id, valid_id) = create_dataset(client, tmp_path)
    project = client.post("/api/projects/", {"name": "p", "train_dataset": train_id, "valid_dataset": valid_id},
                          format="json").json()
    url = f"/api/projects/{project['id']}/runs/"
    for params in (["input_size"], "input_size=32"):
        response = client.post(url, {"plugin": "transfer_learning", "params": params}, format="json")
        assert response.status_code == 400 and response.json()["errors"]["params"], response.content
    huge = client.post(url, {"plugin": "resnet50_classification", "params": {"learning_rate": 1e308}},
                       format="json")
    assert huge.status_code == 400 and huge.json()["errors"]["learning_rate"] == ["must be at most 10"]


def _archive_job(client, path) -> Job:
    from nnc_web.jobs.services import run_job
    from tests.api.helpers import upload

    source = upload(client, path).json()["id"]
    response = client.post("/api/jobs/", {"plugin": "image_classification", "params": {
        "source": source, "width": 16, "height": 16}}, format="json")
    assert response.status_code == 201, response.content
    run_job(response.json()["id"])
    return Job.objects.get(pk=response.json()["id"])


def test_hostile_member_names_become_clear_messages_not_crashes(client, tmp_path, settings):
    import io
    import tarfile

    from tests.sample_data import digit_images

    images = digit_images(4, 3, size=16)
    buffers = []
    for image in images["0"] + images["1"] + images["2"]:
        data = io.BytesIO()
        image.save(data, "PNG")
        buffers.append(data.getvalue())
    path = tmp_path / "names.tar"
    # Latin-1 names (not UTF-8 when read back), a `;` and a newline in class folders, a 5,000-character name.
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as archive:
        names = [f"café/{i}.png" for i in range(4)] + [f"a;b/{i}.png" for i in range(4)] + \
                [f"c\nd/{i}.png" for i in range(3)] + ["c\nd/" + "x" * 5000 + ".png"]
        for name, data in zip(names, buffers, strict=True):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    job = _archive_job(client, path)
    assert job.state == "succeeded", job.message
    events = client.get(f"/api/jobs/{job.pk}/events/")
    assert events.status_code == 200
    text = json.dumps(events.json())
    assert str(settings.DATA_DIR) not in text and "x" * 200 not in text
    found = next(e["data"]["line"] for e in events.json()["events"] if e["data"].get("line", "").startswith("found"))
    assert found == "found 12 images in 3 classes: a;b, c_d, caf_"
    header = client.get(f"/api/datasets/{job.datasets.first().pk}/rows/").json()["header"]
    assert header[1] == "y:label;a_b;c_d;caf_"  # `;` would have split one class into two
