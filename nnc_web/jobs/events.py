"""Store a job event with the next sequence number, then push it to the job's Channels group."""
from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import F

from nnc_web.jobs.models import Job, JobEvent

logger = logging.getLogger(__name__)


def group_name(job_id: int) -> str:
    return f"job.{job_id}"


def store_event(job_id: int, kind: str, data: dict, **job_fields) -> dict:
    """Allocate the next seq and store the event (plus any Job field updates) in one transaction."""
    with transaction.atomic():
        Job.objects.filter(pk=job_id).update(last_seq=F("last_seq") + 1, **job_fields)
        seq = Job.objects.values_list("last_seq", flat=True).get(pk=job_id)
        event = JobEvent.objects.create(job_id=job_id, seq=seq, kind=kind, data=data)
    return event.as_message()


def push_events(job_id: int, messages: list[dict]) -> None:
    """Best-effort live push; stored events are replayed to anyone who missed it."""
    if not messages:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group_name(job_id), {"type": "job.events", "events": messages})
    except Exception:  # noqa: BLE001 - the store is the truth; a failed push is only late
        logger.warning("could not push events of job %s", job_id, exc_info=True)


def record_event(job_id: int, kind: str, data: dict, **job_fields) -> dict:
    message = store_event(job_id, kind, data, **job_fields)
    push_events(job_id, [message])
    return message
