"""Job endpoints: create (run a plugin), list, detail, stored events, cancel."""
from __future__ import annotations

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nnc_web.api import documented, field_errors
from nnc_web.jobs import selectors, services
from nnc_web.jobs.models import JobEvent
from nnc_web.jobs.serializers import JobSerializer
from nnc_web.plugins import registry

MAX_PAGE = 100


@documented("jobs")
class JobListView(APIView):
    """Newest first, `limit` (at most 100) at a time; `?before=<id>` pages on (`next` gives it),
    `?kind=preprocess|training|postprocess` keeps one kind."""

    def get(self, request: Request) -> Response:
        jobs = selectors.jobs_of(request.user)
        try:
            limit = min(MAX_PAGE, max(1, int(request.query_params.get("limit", MAX_PAGE))))
            if "before" in request.query_params:
                jobs = jobs.filter(pk__lt=int(request.query_params["before"]))
        except ValueError:
            return field_errors({"before": "before and limit must be whole numbers"})
        if kind := request.query_params.get("kind"):
            jobs = jobs.filter(kind=kind)
        page = list(jobs.order_by("-pk").prefetch_related("datasets")[:limit + 1])
        more = len(page) > limit
        page = page[:limit]
        data = JobSerializer(page, many=True, context={"targets": selectors.job_targets(page)}).data
        return Response({"results": data, "next": page[-1].pk if more else None})

    def post(self, request: Request) -> Response:
        plugin_id = request.data.get("plugin")
        if not isinstance(plugin_id, str) or plugin_id not in registry.PLUGINS or registry.PLUGINS[plugin_id].hidden:
            return field_errors({"plugin": f"unknown plugin {plugin_id!r}"})
        raw = request.data.get("params") or {}
        if not isinstance(raw, dict):
            return field_errors({"params": "must be an object of parameter values"})
        plugin = registry.get(plugin_id)
        if plugin.kind == "training":
            return field_errors({"plugin": "training plugins run inside a project: POST /api/projects/<id>/runs/"})
        if plugin.kind == "postprocess":
            return field_errors({"plugin": "post-processing plugins run on a training run or a dataset: "
                                           "POST /api/runs/<id>/postprocess/ or /api/datasets/<id>/postprocess/"})
        params, errors = plugin.validate(request.user, raw, trusted=False)
        if errors:
            return field_errors(errors)
        job = services.create_job(request.user, plugin, params)
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)


@documented("job")
class JobDetailView(APIView):
    def get(self, request: Request, job_id: int) -> Response:
        return Response(JobSerializer(selectors.job_of(request.user, job_id)).data)


@documented("job_events")
class JobEventsView(APIView):
    """Stored events after a sequence number: the polling fallback to the websocket."""

    def get(self, request: Request, job_id: int) -> Response:
        job = selectors.job_of(request.user, job_id)
        try:
            after = max(0, int(request.query_params.get("after", 0)))
        except ValueError:
            return field_errors({"after": "must be an integer"})
        events = JobEvent.objects.filter(job=job, seq__gt=after).order_by("seq")[:1000]
        return Response({"events": [e.as_message() for e in events], "state": job.state})


@documented("job_cancel")
class JobCancelView(APIView):
    def post(self, request: Request, job_id: int) -> Response:
        job = services.cancel_job(selectors.job_of(request.user, job_id))
        return Response(JobSerializer(job).data)
