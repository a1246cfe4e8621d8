"""EasyMaker layouts imported through the API."""
from __future__ import annotations

import pytest

from nnc_web.datasets.models import Dataset
from nnc_web.jobs.models import Job
from nnc_web.jobs.services import run_job
from tests.api.helpers import upload
from tests.sample_data import digit_images, write_class_zip

pytestmark = pytest.mark.django_db


def easymaker_zip(tmp_path, wrapper: str | None = "flowers"):
    """train has classes 0,1,2; validation 0,1; test only 2 -> labels must still agree."""
    digits = digit_images(9, 3)
    prefix = f"{wrapper}/" if wrapper else ""
    groups = {f"{prefix}train/{k}": v[:5] for k, v in digits.items()}
    groups |= {f"{prefix}validation/{k}": v[5:8] for k, v in digits.items() if k != "2"}
    groups[f"{prefix}test/2"] = digits["2"][8:]
    return write_class_zip(tmp_path / "easymaker.zip", groups)


def test_one_upload_creates_three_datasets_with_one_label_index(alice, client_for, tmp_path):
    client = client_for(alice)
    upload_id = upload(client, easymaker_zip(tmp_path)).json()["id"]
    response = client.post("/api/jobs/", {"plugin": "easymaker_classification", "params": {
        "source": upload_id, "width": 16, "height": 16, "prefix": "digits-"}}, format="json")
    run_job(response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    assert job.state == "succeeded", job.message
    datasets = {d.name: d for d in Dataset.objects.filter(job=job)}
    assert set(datasets) == {"digits-train", "digits-validation", "digits-test"}
    assert [datasets[n].rows for n in ("digits-train", "digits-validation", "digits-test")] == [15, 6, 1]
    for dataset in datasets.values():
        assert dataset.class_names == ["0", "1", "2"]
    test_rows = client.get(f"/api/datasets/{datasets['digits-test'].pk}/rows/").json()
    assert test_rows["header"] == ["x:image", "y:label;0;1;2"]
    assert test_rows["rows"][0]["cells"][1] == "2"  # class 2 keeps index 2 although test has one class
    assert datasets["digits-validation"].class_counts == [3, 3, 0]


def test_missing_train_folder_is_a_clear_error(alice, client_for, tmp_path):
    client = client_for(alice)
    archive = write_class_zip(tmp_path / "flat.zip", digit_images(2, 2))
    upload_id = upload(client, archive).json()["id"]
    response = client.post("/api/jobs/", {"plugin": "easymaker_classification", "params": {"source": upload_id}},
                           format="json")
    run_job(response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    assert job.state == "failed" and "no train/ folder found" in job.message
