"""A training run on the wrong kind of dataset is refused when it is started (400, per field, saying
which datasets fit), before any run or job exists; validating on the training dataset itself is a
warning; tabular CSV cells that are not numbers are named by line and column."""
from __future__ import annotations

import pytest

from nnc_web.jobs.models import Job, JobEvent
from nnc_web.jobs.services import run_job
from nnc_web.projects.models import Run
from tests.api.helpers import digits_project, upload
from tests.sample_data import digit_images, write_class_zip, write_yolo_zip

pytestmark = pytest.mark.django_db


def make_datasets(client, plugin: str, archive, **params) -> list[dict]:
    source = upload(client, archive).json()["id"]
    job = client.post("/api/jobs/", {"plugin": plugin, "params": {"source": source, **params}}, format="json").json()
    run_job(job["id"])
    assert Job.objects.get(pk=job["id"]).state == "succeeded", Job.objects.get(pk=job["id"]).message
    return client.get(f"/api/jobs/{job['id']}/").json()["datasets"]


@pytest.fixture
def studio(alice, client_for, tmp_path):
    """A digits project (train/valid), plus a YOLO detection dataset and a grayscale classification one."""
    client = client_for(alice)
    project_id, train_id, valid_id = digits_project(client, tmp_path, per_class=4)
    (tmp_path / "yolo").mkdir()
    detection = make_datasets(client, "object_detection_yolo_v2", write_yolo_zip(tmp_path / "yolo" / "y.zip"),
                              num_class=2, width=64, height=64, grid_size=16, num_anchor=2, file1="boxes")
    (tmp_path / "gray").mkdir()
    gray = make_datasets(client, "image_classification", write_class_zip(tmp_path / "gray" / "g.zip",
                                                                          digit_images(3, 2)),
                         channel=1, width=32, height=32, file1="gray")
    return client, project_id, {"train": train_id, "valid": valid_id, "boxes": detection[0]["id"],
                                "gray": gray[0]["id"]}


def start(client, project_id, plugin="transfer_learning", **datasets):
    if datasets:
        assert client.patch(f"/api/projects/{project_id}/", datasets, format="json").status_code == 200
    return client.post(f"/api/projects/{project_id}/runs/", {"plugin": plugin, "params": {}}, format="json")


def test_a_classifier_refuses_a_detection_dataset_and_names_those_that_fit(studio):
    client, project_id, ids = studio
    response = start(client, project_id, train_dataset=ids["boxes"])
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == ["train_dataset"]  # the validation dataset fits
    assert errors["train_dataset"] == [
        f"boxes (#{ids['boxes']}) is an object-detection dataset (y: label grids): Transfer Learning needs an "
        f"image-classification dataset (x: image, y: label), e.g. from Image Classification or EasyMaker image "
        f"classification. Datasets that fit: train (#{ids['train']}), valid (#{ids['valid']}), gray (#{ids['gray']})"]
    assert not Run.objects.exists() and not Job.objects.filter(kind="training").exists()
    built_in = start(client, project_id, "resnet50_classification", valid_dataset=ids["boxes"])
    assert set(built_in.json()["errors"]) == {"train_dataset", "valid_dataset"}
    segmenter = start(client, project_id, "semantic_segmentation", train_dataset=ids["train"]).json()["errors"]
    assert segmenter["valid_dataset"][0].startswith(
        f"boxes (#{ids['boxes']}) is an object-detection dataset (y: label grids): Semantic Segmentation")
    assert segmenter["train_dataset"][0].endswith("None of your datasets fits yet: create one first")
    detector = start(client, project_id, "object_detection").json()["errors"]  # train: digits, valid: boxes
    assert "valid_dataset" not in detector and detector["train_dataset"][0].startswith(
        f"train (#{ids['train']}) is an image-classification dataset: Object Detection (CenterNet, offline) needs an "
        f"object-detection dataset")
    assert detector["train_dataset"][0].endswith(f"Datasets that fit: boxes (#{ids['boxes']})")


def test_padim_refuses_grayscale_images_and_the_tabular_mlp_refuses_images(studio):
    client, project_id, ids = studio
    errors = start(client, project_id, "padim", train_dataset=ids["gray"]).json()["errors"]
    assert errors["train_dataset"][0].startswith(f"gray (#{ids['gray']}) has 1-channel images: PaDiM")
    assert "Datasets that fit: train" in errors["train_dataset"][0]
    errors = start(client, project_id, "tabular_mlp", train_dataset=ids["train"]).json()["errors"]
    assert errors["train_dataset"][0].startswith(
        f"train (#{ids['train']}) is an image-classification dataset: Tabular classifier/regressor (MLP) needs a "
        f"tabular dataset")
    assert errors["train_dataset"][0].endswith("None of your datasets fits yet: create one first")


def test_validating_on_the_training_dataset_is_a_warning_in_the_answer_and_the_log(studio):
    client, project_id, ids = studio
    response = start(client, project_id, valid_dataset=ids["train"])
    assert response.status_code == 201, response.content
    warning = ("the training and validation datasets are the same (train): the validation error will say how well "
               "the model fits its own training images, not how it does on new ones. Choose a separate validation "
               "dataset (e.g. split the data with ratio1/ratio2 when creating it)")
    assert response.json()["warnings"] == [warning]
    events = client.get(f"/api/jobs/{response.json()['job']}/events/").json()["events"]
    logged = [e for e in events if e["kind"] == "log"]
    assert logged[0]["data"]["line"] == f"warning: {warning}"
    assert isinstance(logged[0]["ts"], float)  # every event carries its time (seconds since the epoch)
    grayscale = start(client, project_id, train_dataset=ids["gray"], valid_dataset=ids["valid"])
    assert grayscale.status_code == 201 and grayscale.json()["warnings"] == []  # 1 channel: repeated into RGB


def test_a_tabular_cell_that_is_not_a_number_is_named_by_line_and_column(alice, client_for, tmp_path):
    client = client_for(alice)
    for body, message in (("x__0:a,x__1:b,y:t\n1,2,3\n4,oops,5\n", "line 3, column x__1:b: 'oops' is not a number"),
                          ("x__0:a,y:t;no;yes\n1,0\n2,yes\n", "line 3, column y:t;no;yes: 'yes' is not a class index "
                                                            "(0 to 1)"),
                          ("x__0:a,y:t;no;yes\n1,0\n2,2\n", "line 3, column y:t;no;yes: '2' is not a class index")):
        path = tmp_path / "table.csv"
        path.write_text(body)
        source = upload(client, path).json()["id"]
        job = client.post("/api/jobs/", {"plugin": "tabular_csv", "params": {"source": source}}, format="json").json()
        run_job(job["id"])
        job = Job.objects.get(pk=job["id"])
        assert job.state == "failed" and message in job.message, job.message
        assert "could not convert" not in job.message
        lines = [e.data["line"] for e in JobEvent.objects.filter(job=job, kind="log")]
        assert any(message in line for line in lines)
