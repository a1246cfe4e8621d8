"""The body of the worker actor: run one job's plugin and record its outcome in the Job row."""
from __future__ import annotations

import logging
import shutil
import traceback
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from django.db import transaction
from django.db.models.functions import Now

from nnc_web import storage
from nnc_web.engine.errors import JobCancelled, UserError
from nnc_web.jobs.context import JobContext
from nnc_web.jobs.events import record_event
from nnc_web.jobs.identity import worker_identity
from nnc_web.jobs.models import Job
from nnc_web.jobs.states import finish_job
from nnc_web.plugins import registry

logger = logging.getLogger(__name__)
State = Job.State
DISCARDED = "cancelled: what it worked on was deleted"


def run_job(job_id: int) -> None:
    """The body of the worker actor: run the plugin, record the outcome, never raise."""
    # The database's clock, not this machine's: the reaper on another machine compares against it.
    started = Job.objects.filter(pk=job_id, state=State.QUEUED, cancel_requested=False).update(
        state=State.RUNNING, started_at=Now(), heartbeat_at=Now(), worker=worker_identity())
    if not started:
        return  # cancelled while queued, or already run by another delivery
    ctx = None
    workdir = None
    try:
        job = Job.objects.select_related("owner").get(pk=job_id)
        workdir = Path(job.result_dir) if job.result_dir else storage.jobs_dir(job.owner_id) / str(job.pk)
        Job.objects.filter(pk=job_id).update(result_dir=str(workdir))
        record_event(job_id, "state", {"state": State.RUNNING})
        ctx = JobContext(job, workdir)
        ctx.start_heartbeat()
        plugin = registry.get(job.plugin_id)
        ctx.log(f"{plugin.title}: started")
        params = plugin.resolve(job.owner, job.params, job.context)
        result = plugin.run(ctx, params)
        ctx.close()
        _complete(job, plugin, result)
    except JobCancelled:
        _end(ctx, job_id, State.CANCELLED, "cancelled by the user", "cancelled")
    except UserError as exc:
        if _discarded(job_id):
            _end(ctx, job_id, State.CANCELLED, DISCARDED, "cancelled")
            return
        _end(ctx, job_id, State.FAILED, str(exc), f"error: {exc}")
    except BrokenProcessPool:  # its helper processes were killed (out of memory, or a stop of the studio)
        message = "the job's helper processes stopped unexpectedly (out of memory?); run it again"
        _end(ctx, job_id, State.FAILED, message, f"error: {message}")
    except Exception as exc:  # noqa: BLE001 - a bug must end the job, not the worker
        if _discarded(job_id):  # its files were deleted under it: that is why it broke
            _end(ctx, job_id, State.CANCELLED, DISCARDED, "cancelled")
            return
        logger.error("job %s crashed:\n%s", job_id, traceback.format_exc())
        _end(ctx, job_id, State.FAILED, f"internal error: {type(exc).__name__}",
             f"error: internal error ({type(exc).__name__}); see the worker log")
    finally:
        if workdir is not None and workdir.name == str(job_id):  # the job's own folder (not a run's)
            shutil.rmtree(workdir / "source", ignore_errors=True)  # an extracted archive: needed only while it runs
        if workdir is not None and _discarded(job_id):
            shutil.rmtree(workdir, ignore_errors=True)  # what it worked on was deleted while it ran


def _discarded(job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, discard_results=True).exists()


def _complete(job: Job, plugin, result) -> None:
    """Register what the job made and mark it succeeded, together and only while it is still this
    worker's: a job the reaper gave up on ("worker lost") or the user cancelled registers nothing."""
    with transaction.atomic():
        current = Job.objects.select_for_update().filter(pk=job.pk).values("state", "cancel_requested").first()
        if current is None or current["state"] != State.RUNNING:
            logger.warning("job %s finished after it was marked %s; its results were not registered",
                           job.pk, current and current["state"])
            return
        if current["cancel_requested"]:
            raise JobCancelled("cancelled by the user")
        plugin.complete(job, result)
        record_event(job.pk, "log", {"line": "worker done"})
        finish_job(job.pk, State.SUCCEEDED, expect=State.RUNNING)


def _end(ctx: JobContext | None, job_id: int, state: str, message: str, line: str) -> None:
    """The last log line, then the final state (readers that see the state have every line)."""
    if ctx is not None:
        ctx.close()
    if Job.objects.filter(pk=job_id, state=State.RUNNING).exists():
        record_event(job_id, "log", {"line": line})
    finish_job(job_id, state, message, expect=State.RUNNING)
