"""Websocket /ws/jobs/<id>/?after=<seq>: replay what the client missed, then stream live.

Owner only. Anonymous sockets are closed with 4401 and other users' jobs with 4404 (the socket
equivalents of 401/404), after the handshake so the client can tell the reasons apart.
"""
from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from nnc_web.jobs.events import group_name
from nnc_web.jobs.models import Job, JobEvent

REPLAY_BATCH = 500


class JobEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        if not await self._owns_job(user.pk, self.job_id):
            await self.close(code=4404)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            self.last_seq = max(0, int(query.get("after", ["0"])[0]))
        except ValueError:
            self.last_seq = 0
        # Join first, then replay: an event stored after the replay query is then delivered live,
        # and anything seen twice is dropped by its seq.
        await self.channel_layer.group_add(group_name(self.job_id), self.channel_name)
        while True:
            batch = await self._events_after(self.last_seq)
            if batch:
                await self.send_json({"type": "events", "events": batch})
                self.last_seq = batch[-1]["seq"]
            if len(batch) < REPLAY_BATCH:
                break
        await self.send_json({"type": "replayed", "seq": self.last_seq})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "job_id"):
            await self.channel_layer.group_discard(group_name(self.job_id), self.channel_name)

    async def job_events(self, message: dict) -> None:
        fresh = [e for e in message["events"] if e["seq"] > self.last_seq]
        if not fresh:
            return
        if fresh[0]["seq"] != self.last_seq + 1:
            # A gap: another process pushed a later event first (pushes are best effort and not
            # ordered across processes). The store is ordered, so send the whole range from it.
            fresh = await self._events_between(self.last_seq, fresh[-1]["seq"])
        self.last_seq = fresh[-1]["seq"]
        await self.send_json({"type": "events", "events": fresh})

    @database_sync_to_async
    def _owns_job(self, user_id: int, job_id: int) -> bool:
        return Job.objects.filter(pk=job_id, owner_id=user_id).exists()

    @database_sync_to_async
    def _events_between(self, after: int, last: int) -> list[dict]:
        events = JobEvent.objects.filter(job_id=self.job_id, seq__gt=after, seq__lte=last).order_by("seq")
        return [e.as_message() for e in events]

    @database_sync_to_async
    def _events_after(self, seq: int) -> list[dict]:
        events = JobEvent.objects.filter(job_id=self.job_id, seq__gt=seq).order_by("seq")[:REPLAY_BATCH]
        return [e.as_message() for e in events]
