"""The image explanation plugins through the API on a trained run (jobs run in-process): each one
started from the run, its outputs registered, the batch CSVs in NNC's layout (§3.7-3.13: the
picture's column first, `<stem>/0000/<row>.png`), bad input as clear job messages."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from nnc_web.engine.xai import memory
from nnc_web.jobs.models import Job
from nnc_web.jobs.services import run_job
from nnc_web.projects.models import Run
from tests.api.helpers import digits_project

pytestmark = pytest.mark.django_db

BATCH = {"grad_cam_batch": ("gradcam.csv", "gradcam", {"target_layer": "blocks.3"}),  # 2 x 2 maps at 32 px
         "lime_image_batch": ("lime.csv", "lime", {"num_samples": 20, "num_segments": 6, "num_segments_2": 2}),
         "shap_image_batch": ("shap.csv", "shap", {"num_samples": 4, "batch_size": 4}),
         "smoothgrad_batch": ("smoothgrad.csv", "SmoothGrad", {"num_samples": 2})}
SINGLE = {"grad_cam": ("grad_cam.png", {}), "lime_image": ("lime.png", {"num_samples": 40}),
          "shap_image": ("shap.png", {"num_samples": 8, "batch_size": 4}),
          "smoothgrad": ("smoothgrad.png", {"num_samples": 4})}


@pytest.fixture
def trained(alice, client_for, tmp_path):
    """A transfer-learning run on digits at 32 px (12 validation images of 3 classes), evaluated."""
    client = client_for(alice)
    project_id, _, _ = digits_project(client, tmp_path, per_class=16)
    client.patch(f"/api/projects/{project_id}/", {"config": {"max_epoch": 2, "batch_size": 16}}, format="json")
    run = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "transfer_learning",
                                                                "params": {"input_size": 32}}, format="json").json()
    run_job(run["job"])
    assert Job.objects.get(pk=run["job"]).state == "succeeded"
    return client, Run.objects.get(pk=run["id"])


def start(client, run: Run, plugin: str, **params) -> Job:
    response = client.post(f"/api/runs/{run.pk}/postprocess/", {"plugin": plugin, "params": params}, format="json")
    assert response.status_code == 201, response.content
    run_job(response.json()["job"])
    return Job.objects.get(pk=response.json()["job"])


def log_of(job: Job) -> list[str]:
    return [e.data["line"] for e in job.events.filter(kind="log")]


def first_cell(client, run: Run, row: int = 0) -> str:
    """The image cell as the table shows it (what the browser prefills `image` with)."""
    return client.get(f"/api/runs/{run.pk}/table/?start={row}&limit=1").json()["rows"][0]["cells"][0]


def test_every_image_explanation_runs_on_a_run_and_registers_its_outputs(trained, capsys):
    client, run = trained
    base = f"/api/runs/{run.pk}"
    source = list(csv.reader(open(run.folder() / "output_result.csv", newline="")))
    cell = first_cell(client, run)
    assert not cell.startswith("/")
    for plugin, (name, params) in SINGLE.items():
        job = start(client, run, plugin, image=cell, **params)
        assert job.state == "succeeded", (plugin, job.message)
        assert job.queue == "gpu"
        listed = client.get(f"{base}/postprocess/").json()["results"][0]
        assert listed["plugin_id"] == plugin and listed["outputs"] == [{"path": name, "kind": "image"}]
        picture = Image.open(run.folder() / name)
        assert picture.size == (32, 32) and picture.mode == ("L" if plugin == "smoothgrad" else "RGB")
        assert any(line.startswith("the model predicts class") for line in log_of(job)), plugin
    for plugin, (name, column, params) in BATCH.items():
        job = start(client, run, plugin, **params)
        assert job.state == "succeeded", (plugin, job.message)
        listed = client.get(f"{base}/postprocess/").json()["results"][0]
        assert listed["outputs"] == [{"path": name, "kind": "table"}]
        rows = list(csv.reader(open(run.folder() / name, newline="")))
        stem = name[:-4]
        extra = ["gradcam_map"] if plugin == "grad_cam_batch" else []
        assert rows[0] == [column, *source[0], *extra]  # NNC: the result column first, then the input
        assert [r[1:len(source[0]) + 1] for r in rows[1:]] == source[1:]
        assert [r[0] for r in rows[1:]] == [f"{stem}/0000/{i}.png" for i in range(len(source) - 1)]
        assert all((run.folder() / r[0]).is_file() for r in rows[1:])
        assert (job.progress_done, job.progress_total) == (12, 12)  # progress per image
        if extra:
            maps = [np.load(run.folder() / r[-1]) for r in rows[1:]]
            assert [r[-1] for r in rows[1:]] == [f"gradcam/0000/{i}.npy" for i in range(12)]
            assert all(m.dtype == np.float16 and m.shape == (32, 32) for m in maps)
    table = client.get(f"{base}/table/?csv=gradcam.csv&limit=2").json()
    assert table["columns"][0]["kind"] == "image"  # the viewer shows the pictures
    served = client.get(table["rows"][0]["images"]["0"])
    assert served.status_code == 200
    assert Image.open(io.BytesIO(b"".join(served.streaming_content))).size[0] <= 96

    # headless on the result folder, the class from y' (the predicted one); then the true class of a row
    call_command("run_plugin", "grad_cam_batch", "--user", "alice", "--result", str(run.pk), "--inline",
                 "--param", "label_variable=y'", "--param", "output=predicted.csv", "--param", "target_layer=blocks.3")
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(run.folder())
    predicted = list(csv.reader(open(run.folder() / "predicted.csv", newline="")))
    assert predicted[1][0] == "predicted/0000/0.png" and (run.folder() / "predicted/0000/11.png").is_file()
    scores = np.array([[float(v) for v in r[3:-1]] for r in predicted[1:]])
    same = [int(r[2]) == k for r, k in zip(predicted[1:], scores.argmax(axis=1), strict=True)]
    by_label = list(csv.reader(open(run.folder() / "gradcam.csv", newline="")))
    for i, row in enumerate(predicted[1:]):  # y' gave the predicted class: where y is it, the same map
        if same[i]:
            assert np.array_equal(np.load(run.folder() / row[-1]), np.load(run.folder() / by_label[i + 1][-1]))
    assert any(same)
    label = int(predicted[1][2])
    job = start(client, run, "grad_cam", image=first_cell(client, run), class_index=label, output="true.png")
    assert job.state == "succeeded"
    explained = [line for line in log_of(job) if line.startswith("the model predicts class")]
    assert len(explained) == 1 and f"; explaining class {label} ({label}) (score " in explained[0], explained


def test_bad_input_ends_with_clear_messages(trained, monkeypatch):
    client, run = trained
    cell = first_cell(client, run)
    out_of_range = start(client, run, "grad_cam", image=cell, class_index=5)
    assert out_of_range.state == "failed"
    assert out_of_range.message == "class_index 5 is out of range: this model has 3 classes (0-2)"
    wrong_layer = start(client, run, "grad_cam", image=cell, target_layer="layer4")
    assert wrong_layer.message.startswith("layer 'layer4' is not a layer of this efficientnet_lite0; layers: ")
    Image.new("RGB", (50, 40), (200, 10, 10)).save(run.folder() / "odd.png")
    resized = start(client, run, "lime_image", image="odd.png", num_samples=20)
    assert resized.state == "succeeded"
    assert "odd.png is 50 x 40; the model takes 32 x 32: resized" in log_of(resized)
    assert Image.open(run.folder() / "lime.png").size == (32, 32)
    outside = start(client, run, "smoothgrad", image="/etc/hostname")
    assert outside.state == "failed" and outside.message == "hostname: not a file of this result or dataset"
    monkeypatch.setattr(memory, "available_bytes", lambda device: 64 * 1024 ** 2)
    refused = start(client, run, "shap_image", image=cell)
    assert refused.state == "failed"
    assert refused.message.startswith("batch_size 50 at 32 x 32 px needs about ")
    assert refused.message.endswith(": lower batch_size to 15 or less")
    for plugin, params, field, message in [
            ("grad_cam", {"image": cell, "output": "cam.jpg"}, "output", "must end with .png"),
            ("lime_image", {"image": cell, "num_segments": 4, "num_segments_2": 5}, "num_segments_2",
             "must be at most num_segments"),
            ("grad_cam_batch", {"label_variable": "z"}, "label_variable", "no variable 'z' in output_result.csv"),
            ("grad_cam", {}, "image", "this field is required")]:
        response = client.post(f"/api/runs/{run.pk}/postprocess/", {"plugin": plugin, "params": params},
                               format="json")
        assert response.status_code == 400 and response.json()["errors"][field][0].startswith(message), response.json()
    assert all("Traceback" not in job.message for job in Job.objects.filter(state="failed"))
