"""The body of the worker actor: run one job's plugin and record its outcome in the Job row."""
from __future__ import annotations

import logging
import traceback
from pathlib import Path

from django.utils import timezone

from nnc_web import storage
from nnc_web.engine.errors import JobCancelled, UserError
from nnc_web.jobs.context import JobContext
from nnc_web.jobs.events import record_event
from nnc_web.jobs.models import Job
from nnc_web.jobs.states import finish_job
from nnc_web.plugins import registry

logger = logging.getLogger(__name__)
State = Job.State


def run_job(job_id: int) -> None:
    """The body of the worker actor: run the plugin, record the outcome, never raise."""
    now = timezone.now()
    started = Job.objects.filter(pk=job_id, state=State.QUEUED, cancel_requested=False).update(
        state=State.RUNNING, started_at=now, heartbeat_at=now)
    if not started:
        return  # cancelled while queued, or already run by another delivery
    job = Job.objects.select_related("owner").get(pk=job_id)
    workdir = Path(job.result_dir) if job.result_dir else storage.jobs_dir(job.owner_id) / str(job.pk)
    Job.objects.filter(pk=job_id).update(result_dir=str(workdir))
    record_event(job_id, "state", {"state": State.RUNNING})
    ctx = JobContext(job, workdir)
    ctx.start_heartbeat()
    try:
        plugin = registry.get(job.plugin_id)
        ctx.log(f"{plugin.title}: started")
        params = plugin.resolve(job.owner, job.params, job.context)
        result = plugin.run(ctx, params)
        plugin.complete(job, result)
        ctx.close()
        record_event(job_id, "log", {"line": "worker done"})
        finish_job(job_id, State.SUCCEEDED)
    except JobCancelled:
        ctx.close()
        record_event(job_id, "log", {"line": "cancelled"})
        finish_job(job_id, State.CANCELLED, "cancelled by the user")
    except UserError as exc:
        ctx.close()
        record_event(job_id, "log", {"line": f"error: {exc}"})
        finish_job(job_id, State.FAILED, str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug must end the job, not the worker
        ctx.close()
        logger.error("job %s crashed:\n%s", job_id, traceback.format_exc())
        record_event(job_id, "log", {"line": f"error: internal error ({type(exc).__name__}); see the worker log"})
        finish_job(job_id, State.FAILED, f"internal error: {type(exc).__name__}")
