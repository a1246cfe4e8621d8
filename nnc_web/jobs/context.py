"""JobContext: what a plugin sees of its job (the engine's Reporter protocol, backed by the DB)."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models.functions import Now

from nnc_web.engine.safe_paths import safe_join
from nnc_web.jobs.events import push_events, record_event, store_event
from nnc_web.jobs.models import Job

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.2  # s between stored progress events; the last one always lands
METRIC_PUSH_INTERVAL = 0.25  # s: metrics are stored at once but pushed in batches
STOP_POLL_INTERVAL = 0.5  # s between reads of the cancel flag


class JobContext:
    def __init__(self, job: Job, workdir: Path) -> None:
        self.job_id = job.pk
        self.owner_id = job.owner_id
        self.context = dict(job.context or {})
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._last_progress = 0.0
        self._pending_progress: tuple[int, int] | None = None
        self._metric_buffer: list[dict] = []
        self._last_metric_push = 0.0
        self._last_stop_poll = 0.0
        self._stop = False
        self._lock = threading.Lock()
        self._heartbeat_stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name=f"heartbeat-{job.pk}", daemon=True)

    # -- Reporter protocol -------------------------------------------------------------------
    def log(self, message: str) -> None:
        with self._lock:
            self._flush_locked()
            self._record_locked("log", {"line": str(message)})

    def progress(self, done: int, total: int) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last_progress >= PROGRESS_INTERVAL or done >= total:
                self._pending_progress = None
                self._last_progress = now
                self._record_locked("progress", {"done": done, "total": total},
                                    progress_done=done, progress_total=total)
            else:
                self._pending_progress = (done, total)

    def metric(self, name: str, step: int, value: float) -> None:
        with self._lock:
            message = store_event(self.job_id, "metric", {"name": name, "step": step, "value": float(value)})
            self._metric_buffer.append(message)
            if time.monotonic() - self._last_metric_push >= METRIC_PUSH_INTERVAL:
                self._push_metrics_locked()

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._last_stop_poll >= STOP_POLL_INTERVAL:
            self._last_stop_poll = now
            self._stop = Job.objects.filter(pk=self.job_id, cancel_requested=True).exists()
        return self._stop

    def path(self, name: str) -> Path:
        return safe_join(self.workdir, name)

    # -- lifecycle ---------------------------------------------------------------------------
    def start_heartbeat(self) -> None:
        self._heartbeat.start()

    def close(self) -> None:
        self._heartbeat_stop.set()
        with self._lock:
            self._flush_locked()

    def _record_locked(self, kind: str, data: dict, **job_fields) -> None:
        """Store and push one event, after the buffered metrics: pushes stay in sequence order."""
        self._push_metrics_locked()
        record_event(self.job_id, kind, data, **job_fields)

    def _flush_locked(self) -> None:
        self._push_metrics_locked()
        if self._pending_progress is not None:
            done, total = self._pending_progress
            self._pending_progress = None
            self._record_locked("progress", {"done": done, "total": total},
                                progress_done=done, progress_total=total)

    def _push_metrics_locked(self) -> None:
        if self._metric_buffer:
            push_events(self.job_id, self._metric_buffer)
            self._metric_buffer = []
        self._last_metric_push = time.monotonic()

    def _beat(self) -> None:
        try:
            while not self._heartbeat_stop.wait(settings.NNC_HEARTBEAT_SECONDS):
                try:
                    Job.objects.filter(pk=self.job_id, state=Job.State.RUNNING).update(
                        heartbeat_at=Now())  # the database's clock: machines' clocks may differ
                except DatabaseError:
                    # A busy database must not end the heartbeat: the job would be reaped as lost.
                    logger.warning("heartbeat of job %s failed; retrying", self.job_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()  # this thread's own DB connection
