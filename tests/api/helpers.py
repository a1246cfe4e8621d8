"""Helpers for API tests: uploads and running queued jobs in-process."""
from __future__ import annotations

from pathlib import Path

from nnc_web.jobs.models import Job
from nnc_web.jobs.services import run_job
from tests.sample_data import digit_images, write_class_zip


def upload(client, path: Path, name: str | None = None):
    return client.post(f"/api/uploads/?filename={name or path.name}", data=path.read_bytes(),
                       content_type="application/octet-stream")


def digits_zip(tmp_path: Path, per_class: int = 6, classes: int = 3, **kwargs) -> Path:
    return write_class_zip(tmp_path / "digits.zip", digit_images(per_class, classes), **kwargs)


def create_dataset(client, tmp_path: Path, **params) -> tuple[Job, list[int]]:
    """Upload digits, queue the plugin through the API and run the job here; returns the job, dataset ids."""
    upload_id = upload(client, digits_zip(tmp_path)).json()["id"]
    body = {"plugin": "image_classification",
            "params": {"source": upload_id, "width": 16, "height": 16, "ratio1": 80, "ratio2": 20, **params}}
    response = client.post("/api/jobs/", body, format="json")
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    run_job(job_id)
    job = Job.objects.get(pk=job_id)
    return job, list(job.datasets.order_by("pk").values_list("pk", flat=True))


def digits_project(client, tmp_path: Path, per_class: int = 12, size: int = 32) -> tuple[int, int, int]:
    """Digits 75/25 into `train` and `valid` datasets and a project `digits` on them; returns
    (project id, train id, valid id)."""
    archive = write_class_zip(tmp_path / "digits.zip", digit_images(per_class, 3, size=size))
    source = upload(client, archive).json()["id"]
    job = client.post("/api/jobs/", {"plugin": "image_classification", "params": {
        "source": source, "width": size, "height": size, "ratio1": 75, "ratio2": 25, "file2": "valid"}},
        format="json").json()
    run_job(job["id"])
    train_id, valid_id = (d["id"] for d in client.get(f"/api/jobs/{job['id']}/").json()["datasets"])
    created = client.post("/api/projects/", {"name": "digits", "train_dataset": train_id,
                                             "valid_dataset": valid_id}, format="json").json()
    return created["id"], train_id, valid_id
