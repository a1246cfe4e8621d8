"""A segmentation run through the API: EasyMaker segmentation zip -> datasets -> semantic_segmentation run
-> metrics with the label map, worst-first result rows whose masks can be fetched, re-evaluation, resume
refused without a checkpoint, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nnc_web.projects.models import Run
from tests.api.helpers import upload
from tests.api.test_anomaly_api import run_plugin, start
from tests.api.test_easymaker_api import segmentation_zip

pytestmark = pytest.mark.django_db


def test_a_segmentation_run_through_the_api(alice, client_for, tmp_path):
    client = client_for(alice)
    source = upload(client, segmentation_zip(tmp_path)).json()["id"]
    job = run_plugin(client, "easymaker_segmentation", {"source": source, "width": 64, "height": 64,
                                                        "mode": "padding"})
    assert job.state == "succeeded", job.message
    datasets = {d["name"]: d for d in client.get("/api/datasets/").json()["results"]}
    project = client.post("/api/projects/", {"name": "city", "train_dataset": datasets["train"]["id"],
                                             "valid_dataset": datasets["validation"]["id"]}, format="json").json()
    client.patch(f"/api/projects/{project['id']}/", {"config": {"batch_size": 4, "max_epoch": 2}}, format="json")
    response = client.post(f"/api/projects/{project['id']}/runs/", {"plugin": "semantic_segmentation",
                                                                    "params": {"input_size": 70}}, format="json")
    assert response.status_code == 400 and "multiple of 32" in str(response.json())
    run = start(client, project["id"], "semantic_segmentation", input_size=64)
    assert run["state"] == "succeeded", run
    metrics = run["metrics"]
    assert metrics["kind"] == "segmentation" and 0 <= metrics["mean_iou"] <= 1
    assert [h["epoch"] for h in run["history"]] == [1, 2]
    assert np.asarray(metrics["confusion_matrix"]).shape == (3, 3)  # unlabeled, road, car: the label map kept
    assert np.asarray(metrics["confusion_matrix"]).sum() == 64 * 32  # the 80x40 image padded: 255 is ignored
    page = client.get(f"/api/runs/{run['id']}/results/?limit=10").json()
    assert page["total"] == 1 and page["rows"][0]["truth"].endswith(".png")
    mask = client.get(f"/api/runs/{run['id']}/files/{page['rows'][0]['predicted']}")
    assert mask.status_code == 200
    import io

    predicted = np.asarray(Image.open(io.BytesIO(b"".join(mask.streaming_content)
                                                 if hasattr(mask, "streaming_content") else mask.content)))
    assert predicted.shape == (64, 64) and set(np.unique(predicted)) <= {0, 1, 2}
    job = client.post(f"/api/runs/{run['id']}/evaluate/").json()
    from nnc_web.jobs.services import run_job

    run_job(job["id"])
    again = client.get(f"/api/runs/{run['id']}/").json()["metrics"]
    assert again["mean_iou"] == pytest.approx(metrics["mean_iou"])
    assert (Run.objects.get(pk=run["id"]).folder() / "model" / "manifest.json").exists()
    from nnc_web.engine.segmentation_training.bundle import load_segmenter
    from tests.api.exports import assert_exports_match_the_bundle

    assert_exports_match_the_bundle(client, run["id"], load_segmenter, ("logits",))
