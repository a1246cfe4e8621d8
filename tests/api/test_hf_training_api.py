"""EasyMaker's built-ins through the API and headless: detr_resnet50 on a YOLO v2 dataset, segformer_b3 on an
EasyMaker segmentation dataset (run_plugin --project), with tiny random-initialised configs
(NNC_TINY_HF_CONFIGS=1: the real weights cannot be fetched here); missing weights refused at the form
with the import command; import_weights for both ids."""
from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from nnc_web.engine import hf_weights
from nnc_web.jobs.services import run_job
from nnc_web.projects.models import Run
from tests.api.helpers import upload
from tests.api.test_anomaly_api import run_plugin, start
from tests.api.test_easymaker_api import segmentation_zip
from tests.sample_data import write_yolo_zip

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("NNC_MODEL_DIR", str(tmp_path / "models"))
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache: no weights on this machine
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # read once at import


def test_detr_run_through_the_api(alice, client_for, tmp_path, monkeypatch):
    client = client_for(alice)
    source = upload(client, write_yolo_zip(tmp_path / "yolo.zip", count=8)).json()["id"]
    job = run_plugin(client, "object_detection_centernet", {
        "source": source, "num_class": 2, "width": 64, "height": 64, "channel": 3, "grid_size": 4,
        "file1": "det_train", "ratio1": 75, "file2": "det_valid", "ratio2": 25, "class_names": "red,green"})
    assert job.state == "succeeded", job.message
    datasets = {d["name"]: d for d in client.get("/api/datasets/").json()["results"]}
    project = client.post("/api/projects/", {"name": "boxes", "train_dataset": datasets["det_train"]["id"],
                                             "valid_dataset": datasets["det_valid"]["id"]}, format="json").json()
    detr = {p["id"]: p for p in client.get("/api/plugins/?kind=training").json()["results"]}["detr_resnet50"]
    defaults = {p["name"]: p["default"] for p in detr["params"]}
    assert defaults["learning_rate"] == 2e-4 and defaults["per_device_train_batch_size"] == 4
    assert defaults["per_device_eval_batch_size"] == 4 and defaults["num_train_epochs"] == 3
    assert defaults["threshold"] == 0.5 and "logging_steps" in defaults

    params = {"input_size": 64, "num_train_epochs": 2, "logging_steps": 1, "class_names": "red,green"}
    response = client.post(f"/api/projects/{project['id']}/runs/", {"plugin": "detr_resnet50", "params": params},
                           format="json")
    assert response.status_code == 400  # no weights here: refused before any job, with the way to import them
    assert "python manage.py import_weights detr_resnet50" in response.json()["errors"]["pretrained"][0]
    assert not Run.objects.exists()

    monkeypatch.setenv(hf_weights.TINY_ENV, "1")
    run = start(client, project["id"], "detr_resnet50", **params)
    assert run["state"] == "succeeded", run
    metrics = run["metrics"]
    assert metrics["kind"] == "detection" and 0 <= metrics["map_50"] <= 1 and metrics["threshold"] == 0.5
    assert [c["class"] for c in metrics["per_class"]] == ["red", "green"]
    assert [h["epoch"] for h in run["history"]] == [1, 2]
    assert {"train_loss", "loss_ce", "loss_bbox", "loss_giou", "valid_map50"} <= set(run["history"][0])
    page = client.get(f"/api/runs/{run['id']}/results/?limit=10").json()
    assert page["detection"] and page["total"] == 2 and page["threshold"] == 0.5
    assert client.get(f"/api/runs/{run['id']}/files/{page['rows'][0]['predicted']}").status_code == 200
    folder = Run.objects.get(pk=run["id"]).folder()
    manifest = json.loads((folder / "model" / "manifest.json").read_text())
    assert manifest["architecture"] == "detr_detector" and manifest["training"]["learning_rate"] == 2e-4
    job = client.post(f"/api/runs/{run['id']}/evaluate/").json()  # again from the bundle
    run_job(job["id"])
    assert client.get(f"/api/runs/{run['id']}/").json()["metrics"]["map_50"] == pytest.approx(metrics["map_50"])


def test_segformer_headless_run_plugin_project(alice, client_for, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(hf_weights.TINY_ENV, "1")
    client = client_for(alice)
    source = upload(client, segmentation_zip(tmp_path)).json()["id"]
    job = run_plugin(client, "easymaker_segmentation", {"source": source, "width": 64, "height": 64,
                                                        "mode": "padding"})
    assert job.state == "succeeded", job.message
    datasets = {d["name"]: d for d in client.get("/api/datasets/").json()["results"]}
    call_command("project", "create", "city", "--user", "alice", "--train-dataset", str(datasets["train"]["id"]),
                 "--valid-dataset", str(datasets["validation"]["id"]))
    call_command("run_plugin", "segformer_b3", "--user", "alice", "--project", "city", "--inline",
                 "--param", "input_size=64", "--param", "num_train_epochs=2", "--param", "logging_steps=1")
    out = capsys.readouterr().out.strip().splitlines()
    run = Run.objects.get()
    assert out[-1] == str(run.folder()) and any("step 1: loss" in line for line in out)
    metrics = json.loads((run.folder() / "metrics.json").read_text())
    assert metrics["kind"] == "segmentation" and 0 <= metrics["mean_iou"] <= 1
    assert np.asarray(metrics["confusion_matrix"]).sum() == 64 * 32  # the 80x40 image padded: 255 is ignored
    manifest = json.loads((run.folder() / "model" / "manifest.json").read_text())
    assert manifest["architecture"] == "segformer_segmenter" and manifest["ignore_index"] == 255
    assert list(manifest["id2label"].values()) == metrics["class_names"] and len(metrics["class_names"]) == 3
    (run.folder() / "metrics.json").unlink()
    run_job(client.post(f"/api/runs/{run.pk}/evaluate/").json()["id"])  # again from the bundle
    assert json.loads((run.folder() / "metrics.json").read_text())["mean_iou"] == pytest.approx(metrics["mean_iou"])


def test_import_weights_command_knows_the_hub_models(tmp_path, capsys, monkeypatch):
    from transformers import SegformerForSemanticSegmentation

    from nnc_web.engine.segmentation_training.segformer import tiny_config

    monkeypatch.setenv(hf_weights.TINY_ENV, "1")  # the tiny config stands for nvidia/mit-b3's
    wider = tiny_config(["a", "b"])
    wider.hidden_sizes = [16, 32, 64, 128]  # another size of the same model (as a MiT-b0 file would be)
    SegformerForSemanticSegmentation(wider).save_pretrained(tmp_path / "mit-b0")
    with pytest.raises(CommandError, match=r"mit-b0 are not segformer_b3 weights: \d+ tensors have other shapes") \
            as refused:
        call_command("import_weights", "segformer_b3", str(tmp_path / "mit-b0"))
    assert str(tmp_path) not in str(refused.value) and not hf_weights.is_available("segformer_b3")
    SegformerForSemanticSegmentation(tiny_config(["a", "b"])).save_pretrained(tmp_path / "snapshot")
    call_command("import_weights", "segformer_b3", str(tmp_path / "snapshot"))
    assert "segformer_b3: weights checked and stored in" in capsys.readouterr().out
    assert hf_weights.is_available("segformer_b3") and not hf_weights.is_available("detr_resnet50")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("import_weights", "detr_resnet50", str(tmp_path / "nothing"))
    with pytest.raises(CommandError, match="not facebook/detr-resnet-50"):
        call_command("import_weights", "detr_resnet50", str(tmp_path / "snapshot"))


def test_the_models_listing_marks_detr_and_segformer_weights_missing_ahead_of_the_form(alice, client_for, tmp_path,
                                                                                       monkeypatch):
    def listed() -> dict:
        return {m["id"]: m for m in client_for(alice).get("/api/models/").json()["results"]}

    hub = listed()
    for model_id, repo in (("detr_resnet50", "facebook/detr-resnet-50"), ("segformer_b3", "nvidia/mit-b3")):
        # the training form finds the entry by plugin and switch, and marks `pretrained` before any submission
        assert hub[model_id]["available"] is False, hub[model_id]
        assert (hub[model_id]["plugin"], hub[model_id]["param"], hub[model_id]["repo"]) == (model_id, "pretrained",
                                                                                            repo)
    assert hub["resnet18"]["available"] is False and "plugin" not in hub["resnet18"]  # the store's backbones stay
    monkeypatch.setenv(hf_weights.TINY_ENV, "1")  # tiny test configs need no weights: nothing to mark
    assert {k: m["available"] for k, m in listed().items() if "plugin" in m} == {"detr_resnet50": True,
                                                                                "segformer_b3": True}
    monkeypatch.delenv(hf_weights.TINY_ENV)
    folder = hf_weights.stored_folder("segformer_b3")  # an import (config + weights) makes it available
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    assert listed()["segformer_b3"]["available"] is True and listed()["detr_resnet50"]["available"] is False
