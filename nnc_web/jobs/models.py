"""Jobs: the row is the truth about a long piece of work; events are its ordered, stored log."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Job(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=20)  # preprocess | training | postprocess
    plugin_id = models.CharField(max_length=64)
    title = models.CharField(max_length=200, blank=True)
    params = models.JSONField(default=dict)
    context = models.JSONField(default=dict, blank=True)  # e.g. {"run": 3, "resume": true} for training
    queue = models.CharField(max_length=10, default="cpu")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(default=0)
    message = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    # What it worked on was deleted: its folder is removed when it ends (it may still write until then).
    discard_results = models.BooleanField(default=False)
    last_seq = models.BigIntegerField(default=0)
    result_dir = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)  # the machine, process and device that runs it

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"job {self.pk} {self.plugin_id} ({self.state})"

    @property
    def finished(self) -> bool:
        return self.state in self.FINISHED_STATES


class JobEvent(models.Model):
    class Kind(models.TextChoices):
        LOG = "log"
        PROGRESS = "progress"
        METRIC = "metric"
        STATE = "state"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="unique_job_event_seq")]

    def as_message(self) -> dict:
        return {"seq": self.seq, "kind": self.kind, "data": self.data, "ts": self.created_at.timestamp()}
