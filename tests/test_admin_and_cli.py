"""The Django admin console, production settings, and the headless commands."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from nnc_web.jobs.models import Job
from tests.api.helpers import create_dataset, digits_zip
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(make_user, client_for):
    return client_for(make_user("staff", is_staff=True, is_superuser=True))


def test_admin_lists_users_datasets_jobs_projects(staff_client, alice, client_for, tmp_path):
    client = client_for(alice)
    create_dataset(client, tmp_path)
    client.post("/api/projects/", {"name": "proj1"}, format="json")
    for model, text in (("auth/user", "alice"), ("datasets/dataset", "train"), ("jobs/job", "image_classification"),
                        ("projects/project", "proj1")):
        page = staff_client.get(f"/admin/{model}/")
        assert page.status_code == 200 and text in page.content.decode(), model


def test_staff_cancels_a_job_in_admin(staff_client, alice):
    job = Job.objects.create(owner=alice, kind="preprocess", plugin_id="image_classification")
    response = staff_client.post("/admin/jobs/job/", {"action": "cancel_jobs", "_selected_action": [job.pk]})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == "cancelled" and job.cancel_requested


def test_non_staff_cannot_open_admin(alice, client_for):
    assert client_for(alice).get("/admin/jobs/job/").status_code == 302  # to the admin login


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="nnc_web.settings_production", NNC_DATA_DIR=str(tmp_path),
               DJANGO_SECRET_KEY="x" * 20 + "production-secret-key-for-the-check-0123456789")
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_run_plugin_list_prints_every_plugin(capsys):
    call_command("run_plugin", "--list")
    assert "image_classification\tpreprocess\tImage Classification" in capsys.readouterr().out


def test_run_plugin_inline_prints_dataset_ids_last(alice, tmp_path, capsys):
    archive = digits_zip(tmp_path)
    call_command("run_plugin", "image_classification", "--user", "alice", "--inline",
                 "--param", f"source={archive}", "--param", "width=12", "--param", "height=12",
                 "--param", "ratio1=75", "--param", "ratio2=25", "--param", "file2=valid")
    out = capsys.readouterr().out.strip().splitlines()
    assert "worker done" in out
    ids = [int(x) for x in out[-1].split()]
    assert [d.name for d in alice.datasets.filter(pk__in=ids).order_by("pk")] == ["train", "valid"]


def test_run_plugin_reports_bad_params_and_failures(alice, tmp_path):
    with pytest.raises(CommandError, match="width: must be at least 1"):
        call_command("run_plugin", "image_classification", "--user", "alice", "--inline",
                     "--param", f"source={tmp_path}", "--param", "width=0")
    with pytest.raises(CommandError, match="no user"):
        call_command("run_plugin", "image_classification", "--user", "nobody", "--inline")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="failed: no images found"):
        call_command("run_plugin", "image_classification", "--user", "alice", "--inline",
                     "--param", f"source={tmp_path / 'empty'}")


def test_headless_training_loop(alice, tmp_path, capsys):
    """project create -> run_plugin transfer_learning --project -> evaluate, without a browser."""
    from nnc_web.projects.models import Run
    from tests.sample_data import digit_images, write_class_zip

    archive = write_class_zip(tmp_path / "d.zip", digit_images(8, 2, size=32))
    call_command("run_plugin", "image_classification", "--user", "alice", "--inline", "--param", f"source={archive}",
                 "--param", "width=32", "--param", "height=32", "--param", "ratio1=75", "--param", "ratio2=25")
    train_id, valid_id = capsys.readouterr().out.strip().splitlines()[-1].split()
    call_command("project", "create", "cli", "--user", "alice", "--train-dataset", train_id,
                 "--valid-dataset", valid_id, "--config", "max_epoch=2", "--config", "batch_size=8")
    assert capsys.readouterr().out.startswith("project ")
    call_command("run_plugin", "transfer_learning", "--user", "alice", "--project", "cli", "--inline",
                 "--param", "input_size=32")
    out = capsys.readouterr().out.strip().splitlines()
    run = Run.objects.get()
    assert out[-1] == str(run.folder()) and "worker done" in out
    for name in ("output_result.csv", "metrics.json", "model/manifest.json", "model/weights.safetensors"):
        assert (run.folder() / name).is_file(), name
    (run.folder() / "metrics.json").unlink()
    call_command("evaluate", str(run.pk))
    assert (run.folder() / "metrics.json").is_file()
    with pytest.raises(CommandError, match="give --project"):
        call_command("run_plugin", "transfer_learning", "--user", "alice", "--inline")
    with pytest.raises(CommandError, match="max_epoch: must be at least 1"):
        call_command("project", "create", "bad", "--user", "alice", "--train-dataset", train_id,
                     "--valid-dataset", valid_id, "--config", "max_epoch=0")


def test_headless_anomaly_detection(alice, tmp_path, capsys):
    """MVTec-layout datasets -> project -> run_plugin patchcore --project: metrics.json has AUROCs and the threshold."""
    import json

    from nnc_web.projects.models import Run
    from tests.sample_data import write_mvtec_zip

    archive = write_mvtec_zip(tmp_path / "brick.zip", train=8, good=4, bad=4)
    call_command("run_plugin", "anomaly_detection_dataset", "--user", "alice", "--inline", "--param", f"source={archive}")
    train_id, valid_id = capsys.readouterr().out.strip().splitlines()[-1].split()
    call_command("project", "create", "brick", "--user", "alice", "--train-dataset", train_id,
                 "--valid-dataset", valid_id, "--config", "batch_size=4")
    call_command("run_plugin", "patchcore", "--user", "alice", "--project", "brick", "--inline",
                 "--param", "sample_ratio=0.05")
    out = capsys.readouterr().out.strip().splitlines()
    run = Run.objects.get()
    assert out[-1] == str(run.folder())
    metrics = json.loads((run.folder() / "metrics.json").read_text())
    assert metrics["image_auroc"] >= 0.9 and metrics["pixel_auroc"] >= 0.9 and metrics["threshold"] > 0
    assert json.loads((run.folder() / "model" / "manifest.json").read_text())["architecture"] == "patchcore"
