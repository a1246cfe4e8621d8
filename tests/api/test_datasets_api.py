"""Uploads, dataset creation through the plugin, the browser's endpoints and bad archives."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from nnc_web.datasets.models import Dataset, Upload
from nnc_web.jobs.models import Job, JobEvent
from nnc_web.jobs.services import run_job
from tests.api.helpers import create_dataset, digits_zip, upload
from tests.sample_data import digit_images, write_class_zip

pytestmark = pytest.mark.django_db


def job_lines(job_id: int) -> list[str]:
    return [e.data["line"] for e in JobEvent.objects.filter(job_id=job_id, kind="log").order_by("seq")]


def run_plugin(client, upload_id: int, **params) -> Job:
    response = client.post("/api/jobs/", {"plugin": "image_classification",
                                          "params": {"source": upload_id, "width": 16, "height": 16, **params}},
                           format="json")
    assert response.status_code == 201, response.content
    run_job(response.json()["id"])
    return Job.objects.get(pk=response.json()["id"])


def test_upload_is_streamed_to_disk_and_checked(alice, client_for, tmp_path):
    client = client_for(alice)
    response = upload(client, digits_zip(tmp_path))
    assert response.status_code == 201
    stored = Upload.objects.get(pk=response.json()["id"])
    assert stored.kind == "zip" and stored.size == (tmp_path / "digits.zip").stat().st_size
    assert stored.absolute_path().read_bytes() == (tmp_path / "digits.zip").read_bytes()
    assert stored.absolute_path().name == "digits.zip"
    odd = upload(client, digits_zip(tmp_path), name="..%2F..%2Fmy%20data (1).zip").json()
    assert Upload.objects.get(pk=odd["id"]).absolute_path().name == "my_data__1_.zip"
    assert Upload.objects.get(pk=odd["id"]).absolute_path().parent == stored.folder().parent / str(odd["id"])


@pytest.mark.parametrize("name,data,message", [
    ("a.exe", b"MZ...", "unsupported file type"),
    ("a.zip", b"plain text pretending", "not a valid archive"),
    ("a.zip", b"", "the file is empty"),
])
def test_bad_uploads_are_refused_with_a_message_and_leave_nothing(alice, client_for, name, data, message):
    response = client_for(alice).post(f"/api/uploads/?filename={name}", data=data,
                                      content_type="application/octet-stream")
    assert response.status_code == 400 and message in response.json()["detail"]
    assert not Upload.objects.exists()


def test_upload_size_cap(alice, client_for, settings, tmp_path):
    settings.NNC_MAX_UPLOAD_BYTES = 100
    response = upload(client_for(alice), digits_zip(tmp_path))
    assert response.status_code == 400 and "larger than" in response.json()["detail"]


def test_dataset_creation_registers_both_outputs(alice, client_for, tmp_path):
    client = client_for(alice)
    job, ids = create_dataset(client, tmp_path, file1="train", file2="valid")
    assert job.state == "succeeded" and job_lines(job.pk)[-1] == "worker done"
    train, valid = (client.get(f"/api/datasets/{i}/").json() for i in ids)
    assert (train["name"], train["rows"], valid["name"], valid["rows"]) == ("train", 14, "valid", 4)
    assert train["class_names"] == ["0", "1", "2"]
    assert [(c["name"], c["shape"]) for c in train["columns"]] == [("x", "3,16,16"), ("y", "1")]
    assert train["size_bytes"] > 0
    assert job.result_dir and not (Dataset.objects.get(pk=ids[0]).folder() / ".." / "build").exists()


def test_rows_are_paginated_by_row_number(alice, client_for, tmp_path):
    client = client_for(alice)
    _, (train_id, _) = create_dataset(client, tmp_path)
    first = client.get(f"/api/datasets/{train_id}/rows/?start=0&limit=5").json()
    assert first["total"] == 14 and first["header"] == ["x:image", "y:label;0;1;2"]
    assert [r["index"] for r in first["rows"]] == [0, 1, 2, 3, 4] and first["next"] == 5
    last = client.get(f"/api/datasets/{train_id}/rows/?start=10&limit=5").json()
    assert [r["index"] for r in last["rows"]] == [10, 11, 12, 13] and last["next"] is None
    everything = client.get(f"/api/datasets/{train_id}/rows/?limit=500").json()["rows"]
    assert everything[:5] == first["rows"]
    assert client.get(f"/api/datasets/{train_id}/rows/?start=x").status_code == 400


def test_files_thumbnails_and_no_escape(alice, client_for, tmp_path):
    client = client_for(alice)
    _, (train_id, _) = create_dataset(client, tmp_path)
    cell = client.get(f"/api/datasets/{train_id}/rows/").json()["rows"][0]["cells"][0]
    image = client.get(f"/api/datasets/{train_id}/files/{cell[2:]}")
    assert image.status_code == 200 and image["X-Content-Type-Options"] == "nosniff"
    assert Image.open(io.BytesIO(b"".join(image.streaming_content))).size == (16, 16)
    thumb = client.get(f"/api/datasets/{train_id}/files/{cell[2:]}?thumb=1")
    assert Image.open(io.BytesIO(b"".join(thumb.streaming_content))).format == "JPEG"
    for evil in ("../../../../etc/passwd", "..%2F..%2Fsecret", ".rows.npy", "/etc/passwd"):
        assert client.get(f"/api/datasets/{train_id}/files/{evil}").status_code == 404, evil


def test_download_is_a_zip_of_csv_and_images(alice, client_for, tmp_path):
    client = client_for(alice)
    _, (train_id, _) = create_dataset(client, tmp_path)
    response = client.get(f"/api/datasets/{train_id}/download/")
    assert response["Content-Disposition"] == 'attachment; filename="train.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = archive.namelist()
    assert "train/train.csv" in names and len([n for n in names if n.endswith(".png")]) == 14
    assert not any("/." in n for n in names)
    assert archive.read("train/train.csv").decode().startswith("x:image,y:label;0;1;2\n")


def test_delete_removes_row_and_files(alice, client_for, tmp_path):
    client = client_for(alice)
    _, (train_id, valid_id) = create_dataset(client, tmp_path)
    folder = Dataset.objects.get(pk=train_id).folder()
    assert client.delete(f"/api/datasets/{train_id}/").status_code == 204
    assert not folder.exists() and not Dataset.objects.filter(pk=train_id).exists()
    assert Dataset.objects.filter(pk=valid_id).exists()


def test_zip_slip_archive_fails_the_job_clearly_and_writes_nothing_outside(alice, client_for, tmp_path, settings):
    client = client_for(alice)
    evil = write_class_zip(tmp_path / "evil.zip", digit_images(3, 2), extra={"../../../escaped.png": b"x"})
    job = run_plugin(client, upload(client, evil).json()["id"])
    assert job.state == "failed" and "path escapes its folder" in job.message
    assert not any(p.name == "escaped.png" for p in tmp_path.rglob("*"))
    assert not Dataset.objects.exists()
    assert job_lines(job.pk)[-1].startswith("error: rejected archive")


def test_zip_bomb_fails_the_job(alice, client_for, tmp_path, settings):
    settings.NNC_ARCHIVE_MAX_RATIO = 10
    settings.NNC_ARCHIVE_RATIO_SLACK_BYTES = 1024
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cls/zeros.png", b"\0" * 5_000_000)
    client = client_for(alice)
    job = run_plugin(client, upload(client, bomb).json()["id"])
    assert job.state == "failed" and "zip bomb" in job.message


def test_bad_images_are_skipped_and_listed_not_fatal(alice, client_for, tmp_path, settings):
    settings.NNC_MAX_IMAGE_PIXELS = 500_000
    big = io.BytesIO()
    Image.fromarray(np.zeros((1000, 1000), np.uint8)).save(big, "PNG")
    extra = {"0/bomb.png": big.getvalue(), "0/fake.jpg": b"not a jpeg", "1/notes.txt": b"hello"}
    archive = write_class_zip(tmp_path / "mixed.zip", digit_images(4, 2), extra=extra)
    client = client_for(alice)
    job = run_plugin(client, upload(client, archive).json()["id"])
    lines = job_lines(job.pk)
    assert job.state == "succeeded"
    assert any("0/bomb.png" in line and "pixel limit" in line for line in lines)
    assert any("0/fake.jpg" in line and "not a readable image" in line for line in lines)
    assert any("1/notes.txt: not an image file" in line for line in lines)
    assert "converted 8 of 10 images (2 skipped)" in lines
    assert Dataset.objects.get(job=job).rows == 8


def test_cross_field_validation(alice, client_for, tmp_path):
    client = client_for(alice)
    upload_id = upload(client, digits_zip(tmp_path)).json()["id"]
    response = client.post("/api/jobs/", {"plugin": "image_classification", "params": {
        "source": upload_id, "ratio1": 80, "ratio2": 30, "file2": "x"}}, format="json")
    assert response.json()["errors"]["ratio2"] == ["ratio1 + ratio2 must be at most 100"]
    same = client.post("/api/jobs/", {"plugin": "image_classification", "params": {
        "source": upload_id, "ratio1": 50, "ratio2": 50, "file1": "a", "file2": "a"}}, format="json")
    assert same.json()["errors"]["file2"] == ["must differ from file1"]
    bad_name = client.post("/api/jobs/", {"plugin": "image_classification", "params": {
        "source": upload_id, "file1": "../evil"}}, format="json")
    assert "file1" in bad_name.json()["errors"]


def test_upload_with_session_auth_and_csrf_streams_raw_body(alice, tmp_path):
    """The SPA's way: session cookie + CSRF header + application/octet-stream body."""
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/api/auth/me/")
    token = client.cookies["csrftoken"].value
    data = digits_zip(tmp_path).read_bytes()
    refused = client.post("/api/uploads/?filename=d.zip", data=data, content_type="application/octet-stream")
    assert refused.status_code == 403
    response = client.post("/api/uploads/?filename=d.zip", data=data, content_type="application/octet-stream",
                           HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201, response.content
    assert Upload.objects.get(pk=response.json()["id"]).size == len(data)


def put_chunk(client, upload_id: int, offset: int, data: bytes):
    return client.put(f"/api/uploads/{upload_id}/chunk/?offset={offset}", data=data,
                      content_type="application/octet-stream")


def test_chunked_upload_resumes_from_the_servers_offset(alice, client_for, tmp_path, settings):
    settings.NNC_UPLOAD_CHUNK_BYTES = 1000
    client = client_for(alice)
    data = digits_zip(tmp_path).read_bytes()
    started = client.post("/api/uploads/start/", {"filename": "big.zip", "size": len(data)}, format="json").json()
    assert (started["state"], started["size"], started["chunk_size"]) == ("uploading", 0, 1000)
    upload_id = started["id"]
    assert put_chunk(client, upload_id, 0, data[:1000]).json()["size"] == 1000
    # the connection broke after the server stored the next chunk; the client resends it
    put_chunk(client, upload_id, 1000, data[1000:2000])
    resent = put_chunk(client, upload_id, 1000, data[1000:2000])
    assert resent.status_code == 409 and resent.json()["received"] == 2000
    too_big = put_chunk(client, upload_id, 2000, data[2000:3001])
    assert too_big.status_code == 400 and "at most 1000 bytes" in too_big.json()["detail"]
    early = client.post(f"/api/uploads/{upload_id}/finish/")
    assert early.status_code == 409 and early.json()["received"] == 2000
    offset = client.get(f"/api/uploads/{upload_id}/").json()["size"]
    while offset < len(data):
        offset = put_chunk(client, upload_id, offset, data[offset:offset + 1000]).json()["size"]
    done = client.post(f"/api/uploads/{upload_id}/finish/").json()
    assert (done["state"], done["kind"], done["size"]) == ("ready", "zip", len(data))
    assert Upload.objects.get(pk=upload_id).absolute_path().read_bytes() == data
    assert put_chunk(client, upload_id, len(data), b"x").status_code == 409


def test_incomplete_upload_cannot_feed_a_plugin(alice, client_for):
    client = client_for(alice)
    upload_id = client.post("/api/uploads/start/", {"filename": "a.zip", "size": 10}, format="json").json()["id"]
    response = client.post("/api/jobs/", {"plugin": "image_classification", "params": {"source": upload_id}},
                           format="json")
    assert response.json()["errors"]["source"] == ["this upload is not complete yet"]


def test_chunked_upload_checks_name_size_and_content(alice, client_for, settings):
    client = client_for(alice)
    settings.NNC_MAX_UPLOAD_BYTES = 100
    assert "larger than" in client.post("/api/uploads/start/", {"filename": "a.zip", "size": 101},
                                        format="json").json()["detail"]
    assert client.post("/api/uploads/start/", {"filename": "a.zip"}, format="json").json()["errors"]["size"]
    assert "unsupported" in client.post("/api/uploads/start/", {"filename": "a.exe", "size": 5},
                                        format="json").json()["detail"]
    upload_id = client.post("/api/uploads/start/", {"filename": "a.zip", "size": 5}, format="json").json()["id"]
    put_chunk(client, upload_id, 0, b"hello")
    bad = client.post(f"/api/uploads/{upload_id}/finish/")
    assert bad.status_code == 400 and "not a valid archive" in bad.json()["detail"]
    assert not Upload.objects.filter(pk=upload_id).exists()
