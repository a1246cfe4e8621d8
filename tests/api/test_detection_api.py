"""The YOLO v2 and CenterNet plugins through the API: outputs, bad input reporting, viewer data."""
from __future__ import annotations

import io

import pytest

from nnc_web.datasets.models import Dataset
from nnc_web.jobs.models import Job, JobEvent
from nnc_web.jobs.services import run_job
from tests.api.helpers import upload
from tests.sample_data import write_yolo_zip

pytestmark = pytest.mark.django_db


def run(client, plugin: str, archive, **params) -> Job:
    upload_id = upload(client, archive).json()["id"]
    response = client.post("/api/jobs/", {"plugin": plugin, "params": {"source": upload_id, **params}}, format="json")
    assert response.status_code == 201, response.content
    run_job(response.json()["id"])
    return Job.objects.get(pk=response.json()["id"])


def lines(job: Job) -> list[str]:
    return [e.data["line"] for e in JobEvent.objects.filter(job=job, kind="log").order_by("seq")]


BAD_LABELS = {
    "images/bad.txt": b"0 0.5 0.5 0.2 0.2\nnot numbers\n5 0.5 0.5 0.1 0.1\n1 1.7 0.5 0.1 0.1\n",
}


def with_bad_input(tmp_path):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "PNG")
    extra = {**BAD_LABELS, "images/bad.png": buffer.getvalue(), "images/nolabel.png": buffer.getvalue(),
             "images/broken.png": b"not an image", "images/broken.txt": b"0 0.5 0.5 0.1 0.1\n"}
    return write_yolo_zip(tmp_path / "yolo.zip", count=8, extra=extra)


def test_yolo_plugin_builds_nnc_detection_datasets_and_reports_bad_input(alice, client_for, tmp_path):
    client = client_for(alice)
    job = run(client, "object_detection_yolo_v2", with_bad_input(tmp_path), num_class=2, class_names="red,green",
              width=128, height=96, grid_size=16, num_anchor=3, ratio1=75, ratio2=25, file2="valid")
    log = lines(job)
    assert job.state == "succeeded", log
    assert "images/bad.txt line 2: expected 'class cx cy w h', got 'not numbers'" in log
    assert "images/bad.txt line 3: class 5 >= num_class 2" in log
    assert any(line.startswith("images/bad.txt line 4: box 1.7") for line in log)
    assert "images/nolabel.txt: missing label file, the image has no objects" in log
    assert any("images/broken.png" in line and "not a readable image" in line for line in log)
    assert "kept 10 of 11 images (1 dropped)" in log
    train, valid = Dataset.objects.filter(job=job).order_by("pk")
    assert (train.rows, valid.rows) == (8, 2) and train.class_names == ["red", "green"]
    assert [c["shape"] for c in train.columns] == ["3,96,128", "3,6,8", "3,6,8,4", "n,5"]
    page = client.get(f"/api/datasets/{train.pk}/rows/?limit=50").json()
    assert page["header"] == ["x:image", "y:label", "r:region", "#boxes"]
    label = client.get(f"/api/datasets/{train.pk}/files/{page['rows'][0]['cells'][1][2:]}")
    assert len(b"".join(label.streaming_content).decode().splitlines()) == 3 * 6  # anchors x grid rows
    boxes = [b for row in page["rows"] for b in row["boxes"]]
    assert boxes and all(0 <= b["cx"] <= 1 and b["cls"] in (0, 1) for b in boxes)
    assert sum(train.class_counts) == len(boxes)


def test_centernet_leaves_out_images_without_boxes(alice, client_for, tmp_path):
    client = client_for(alice)
    job = run(client, "object_detection_centernet", with_bad_input(tmp_path), num_class=2, width=64, height=64,
              grid_size=4, ratio1=100, ratio2=0)
    log = lines(job)
    assert job.state == "succeeded", log
    assert "left out (no valid box): images/nolabel" in log
    dataset = Dataset.objects.get(job=job)
    assert dataset.rows == 9 and dataset.name == "training_for_centernet"
    assert [c["shape"] for c in dataset.columns][1:3] == ["2,16,16", "1,16,16,4"]


def test_grid_and_class_name_errors_are_clear(alice, client_for, tmp_path):
    client = client_for(alice)
    upload_id = upload(client, write_yolo_zip(tmp_path / "y.zip", count=2)).json()["id"]
    response = client.post("/api/jobs/", {"plugin": "object_detection_yolo_v2", "params": {
        "source": upload_id, "width": 100, "height": 96, "grid_size": 16}}, format="json")
    assert response.json()["errors"]["width"] == ["must be divisible by grid_size (16)"]
    job = run(client, "object_detection_yolo_v2", tmp_path / "y.zip", num_class=3, class_names="a,b")
    assert job.state == "failed" and "2 class names for num_class 3" in job.message


def test_class_names_come_from_the_archive(alice, client_for, tmp_path):
    archive = write_yolo_zip(tmp_path / "y.zip", count=3, extra={"classes.txt": b"cat\ndog\n"})
    job = run(client_for(alice), "object_detection_yolo_v2", archive, num_class=2, width=64, height=64)
    assert Dataset.objects.get(job=job).class_names == ["cat", "dog"]


def test_classification_datasets_get_a_histogram(alice, client_for, tmp_path):
    from tests.api.helpers import create_dataset

    _, (train_id, valid_id) = create_dataset(client_for(alice), tmp_path)
    counts = Dataset.objects.get(pk=train_id).class_counts
    assert len(counts) == 3 and sum(counts) == 14
    assert [a + b for a, b in zip(counts, Dataset.objects.get(pk=valid_id).class_counts, strict=True)] == [6, 6, 6]


def test_zip_slip_in_a_detection_archive_is_rejected(alice, client_for, tmp_path):
    archive = write_yolo_zip(tmp_path / "y.zip", count=2, extra={"../../evil.txt": b"x"})
    job = run(client_for(alice), "object_detection_yolo_v2", archive, num_class=2, width=64, height=64)
    assert job.state == "failed" and "path escapes its folder" in job.message
    assert not Dataset.objects.filter(job=job).exists()
