"""Issue 11's server-side polish: form labels in the plugin schema, a corrupt archive named as
corrupt, histogram headings that say what is counted, and anomaly masks painted on defects only."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from nnc_web.datasets.models import Upload
from nnc_web.jobs.models import Job
from nnc_web.jobs.services import run_job
from nnc_web.plugins import registry
from tests.api.helpers import create_dataset, digits_zip, upload
from tests.sample_data import write_mvtec_zip, write_yolo_zip

pytestmark = pytest.mark.django_db

PREPROCESSING = ("image_classification", "object_detection_yolo_v2", "object_detection_centernet",
                 "easymaker_classification", "coco_detection", "easymaker_segmentation", "tabular_csv",
                 "anomaly_detection_dataset")


def test_pre_processing_forms_have_words_for_every_parameter(alice, client_for):
    plugins = {p["id"]: p for p in client_for(alice).get("/api/plugins/?kind=preprocess").json()["results"]}
    labels = {p["name"]: p["label"] for p in plugins["image_classification"]["params"]}
    assert labels["file1"] == "Training data name" and labels["ratio1"] == "Training data ratio (%)"
    assert labels["file2"] == "Validation data name" and labels["source"] == "Image archive"
    assert labels["mode"] == "Fit to size" and labels["channel"] == "Colour channels"
    yolo = {p["name"]: p["label"] for p in plugins["object_detection_yolo_v2"]["params"]}
    assert yolo["num_class"] == "Number of classes" and yolo["grid_size"] == "Grid cell (px)"
    for plugin_id in PREPROCESSING:  # declared, not the humanised fallback, for every parameter
        undeclared = [p.name for p in registry.get(plugin_id).params if not p.label]
        assert undeclared == [], (plugin_id, undeclared)


def test_a_plugin_without_labels_still_gets_words(alice, client_for):
    tile = next(p for p in client_for(alice).get("/api/plugins/?kind=postprocess").json()["results"]
                if p["id"] == "tile_images")
    assert {p["name"]: p["label"] for p in tile["params"]}["num_column"] == "Num column"


def test_a_zip_cut_short_is_refused_as_corrupt(alice, client_for, tmp_path):
    data = digits_zip(tmp_path).read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[:len(data) // 2])
    response = upload(client_for(alice), tmp_path / "cut.zip", name="digits.zip")
    assert response.status_code == 400
    assert response.json()["detail"] == ("digits.zip: the zip file is corrupt: it was cut short or damaged "
                                         "(its table of contents is missing); upload it again")
    assert not Upload.objects.exists()
    (tmp_path / "text.zip").write_bytes(b"plain text pretending")
    other = upload(client_for(alice), tmp_path / "text.zip").json()["detail"]
    assert other.startswith("text.zip is not a valid archive: ") and "corrupt" not in other


def test_a_damaged_member_fails_the_job_as_corrupt(alice, client_for, tmp_path):
    data = bytearray(digits_zip(tmp_path).read_bytes())
    data[60] ^= 0xFF  # the first image's bytes no longer match their checksum
    (tmp_path / "damaged.zip").write_bytes(bytes(data))
    client = client_for(alice)
    source = upload(client, tmp_path / "damaged.zip").json()["id"]  # its table of contents is intact
    job = client.post("/api/jobs/", {"plugin": "image_classification", "params": {"source": source}},
                      format="json").json()
    run_job(job["id"])
    job = Job.objects.get(pk=job["id"])
    assert job.state == "failed" and job.message.startswith("the archive is corrupt (damaged or incomplete): ")


def dataset_named(client, name: str) -> dict:
    return next(d for d in client.get("/api/datasets/").json()["results"] if d["name"] == name)


def test_histograms_say_what_they_count(alice, client_for, tmp_path):
    client = client_for(alice)
    _, (train, _) = create_dataset(client, tmp_path)
    assert client.get(f"/api/datasets/{train}/").json()["counts_of"] == "images"
    source = upload(client, write_yolo_zip(tmp_path / "shapes.zip", count=4,
                                           extra={"classes.txt": b"red\ngreen\n"})).json()["id"]
    job = client.post("/api/jobs/", {"plugin": "object_detection_yolo_v2", "params": {
        "source": source, "num_class": 2, "width": 64, "height": 64, "grid_size": 16}}, format="json").json()
    run_job(job["id"])
    boxes = client.get(f"/api/jobs/{job['id']}/").json()["datasets"][0]["id"]
    assert client.get(f"/api/datasets/{boxes}/").json()["counts_of"] == "boxes"


@pytest.fixture
def anomaly_test_set(alice, client_for, tmp_path):
    client = client_for(alice)
    source = upload(client, write_mvtec_zip(tmp_path / "brick.zip", train=4, good=3, bad=3, size=64)).json()["id"]
    job = client.post("/api/jobs/", {"plugin": "anomaly_detection_dataset", "params": {
        "source": source, "width": 64, "height": 64, "prefix": "brick_"}}, format="json").json()
    run_job(job["id"])
    return client, dataset_named(client, "brick_test")


def test_anomaly_masks_paint_only_their_defect_pixels(anomaly_test_set):
    client, test = anomaly_test_set
    assert test["counts_of"] == "images"  # one label per image, though the dataset has masks
    assert test["palette"] == ["#1f77b4", "#d62728"]  # normal blue, anomalous red, as the evaluation draws them
    assert dataset_named(client, "brick_train")["palette"] == test["palette"]
    rows = client.get(f"/api/datasets/{test['id']}/rows/?limit=20").json()["rows"]
    painted = 0
    for row in rows:
        relative = row["cells"][2].removeprefix("./")
        raw = b"".join(client.get(f"/api/datasets/{test['id']}/files/{relative}").streaming_content)
        mask = np.asarray(Image.open(io.BytesIO(raw)).convert("L"))
        answer = client.get(f"/api/datasets/{test['id']}/files/{relative}?overlay=1")
        overlay = np.asarray(Image.open(io.BytesIO(b"".join(answer.streaming_content))))
        assert overlay.shape == (*mask.shape, 4)
        alpha = overlay[..., 3]
        assert ((alpha > 0) == (mask > 0)).all()  # painted exactly where the defect is
        if (mask > 0).any():
            assert (overlay[mask > 0][:, :3] == (214, 39, 40)).all()
            painted += 1
        else:  # a normal image: nothing at all is painted
            assert row["cells"][1] == "0" and alpha.max() == 0
    assert painted == 3
