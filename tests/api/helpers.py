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
