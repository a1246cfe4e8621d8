"""The pieces of scale-out that need no second machine: worker commands, identity, the database clock."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from nnc_web.jobs import services
from nnc_web.jobs.models import Job
from nnc_web.workers import worker_commands


def test_one_worker_per_gpu_id_each_seeing_only_its_device():
    commands = worker_commands(["gpu"], 4, 4, ["0", "3"], {"PATH": "/bin"})
    assert [name for name, _, _ in commands] == ["worker-gpu0", "worker-gpu3"]
    for (_, argv, env), gpu in zip(commands, ["0", "3"], strict=True):
        assert env["CUDA_VISIBLE_DEVICES"] == gpu and env["dramatiq_queue_prefetch"] == "1"
        assert argv[argv.index("--threads") + 1] == "1" and argv[argv.index("--queues") + 1:] == ["gpu"]
    [(name, argv, env)] = worker_commands(["cpu", "gpu"], 2, 3, None, {})
    assert name == "worker" and "CUDA_VISIBLE_DEVICES" not in env and env["dramatiq_queue_prefetch"] == "3"
    assert argv[argv.index("--processes") + 1] == "2" and argv[argv.index("--queues") + 1:] == ["cpu", "gpu"]


@pytest.mark.parametrize("args, message", [
    (["--queues", "fast"], "unknown queue fast"),
    (["--gpu-ids", "0,x"], "--gpu-ids takes device numbers"),
    (["--threads", "0"], "at least 1"),
])
def test_runworker_refuses_bad_arguments_clearly(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("runworker", *args)


def test_runworker_without_a_broker_says_so(monkeypatch, capsys):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setattr("nnc_web.config.redis_url", lambda: None)
    with pytest.raises(SystemExit) as stop:
        call_command("runworker", "--queues", "gpu")
    assert stop.value.code == 2


@pytest.mark.django_db
def test_the_job_records_its_worker_and_the_reaper_uses_the_database_clock(alice, monkeypatch):
    from nnc_web.jobs import identity
    from nnc_web.jobs.runner import run_job

    job = Job.objects.create(owner=alice, kind="postprocess", plugin_id="missing_plugin", queue="cpu")
    monkeypatch.setenv("NNC_WORKER_HOST", "machine-z")
    identity.worker_identity.cache_clear()
    run_job(job.pk)  # an unknown plugin fails, but the claim recorded who ran it
    identity.worker_identity.cache_clear()
    job.refresh_from_db()
    assert job.worker.startswith("machine-z pid ") and job.worker.endswith("· CPU")
    fresh = Job.objects.create(owner=alice, kind="postprocess", plugin_id="x", queue="cpu", state="running")
    Job.objects.filter(pk=fresh.pk).update(heartbeat_at=timezone.now())
    # This machine's clock runs an hour fast: judged by it, the fresh heartbeat would look lost.
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(hours=1))
    assert services.reap_lost_jobs() == []
    monkeypatch.setattr(timezone, "now", real_now)
    Job.objects.filter(pk=fresh.pk).update(heartbeat_at=real_now() - timedelta(hours=1))
    assert services.reap_lost_jobs() == [fresh.pk]
