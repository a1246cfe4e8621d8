from __future__ import annotations

import time

from django.http import FileResponse, HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nnc_web.api import documented, field_errors
from nnc_web.projects.selectors import run_of
from nnc_web.selectors import get_or_404
from nnc_web.serving import selectors, services, throttle
from nnc_web.serving.authentication import EndpointTokenAuthentication
from nnc_web.serving.models import Endpoint, EndpointToken
from nnc_web.serving.serializers import (
    EndpointSerializer,
    EndpointTokenSerializer,
    PredictRequestSerializer,
    PredictResponseSerializer,
)


def _endpoint(request: Request, endpoint: Endpoint, code: int = 200) -> Response:
    return Response(EndpointSerializer(endpoint, context={"request": request}).data, status=code)


@documented("endpoints")
class EndpointListView(APIView):
    def get(self, request: Request) -> Response:
        """The user's endpoints (`?run=<id>`: those of one run)."""
        endpoints = selectors.endpoints_of(request.user)
        run = request.query_params.get("run")
        if run is not None:
            if not run.isdigit():
                return field_errors({"run": "a run id"})
            endpoints = endpoints.filter(run_id=int(run))
        return Response({"results": EndpointSerializer(endpoints, many=True, context={"request": request}).data})

    def post(self, request: Request) -> Response:
        """`{"run": id, "name"?, "max_instances"?, "max_body_bytes"?, "max_image_pixels"?,
        "rate_per_minute"?}`: serve the run's model; the answer's `url` is where to call it."""
        endpoint, errors = services.create_endpoint(request.user, request.data)
        if errors:
            return field_errors(errors)
        return _endpoint(request, endpoint, status.HTTP_201_CREATED)


@documented("endpoint")
class EndpointDetailView(APIView):
    def get(self, request: Request, endpoint_id: int) -> Response:
        return _endpoint(request, selectors.endpoint_of(request.user, endpoint_id))

    def patch(self, request: Request, endpoint_id: int) -> Response:
        """Rename, change limits, or `{"state": "running" | "stopped"}`."""
        endpoint = selectors.endpoint_of(request.user, endpoint_id)
        errors = services.update_endpoint(endpoint, request.data)
        if errors:
            return field_errors(errors)
        return _endpoint(request, endpoint)

    def delete(self, request: Request, endpoint_id: int) -> Response:
        services.delete_endpoint(selectors.endpoint_of(request.user, endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@documented("endpoint_start")
class EndpointStartView(APIView):
    def post(self, request: Request, endpoint_id: int) -> Response:
        endpoint = selectors.endpoint_of(request.user, endpoint_id)
        return _endpoint(request, services.set_state(endpoint, Endpoint.State.RUNNING))


@documented("endpoint_stop")
class EndpointStopView(APIView):
    def post(self, request: Request, endpoint_id: int) -> Response:
        endpoint = selectors.endpoint_of(request.user, endpoint_id)
        return _endpoint(request, services.set_state(endpoint, Endpoint.State.STOPPED))


@documented("endpoint_tokens")
class EndpointTokenListView(APIView):
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = selectors.endpoint_of(request.user, endpoint_id)
        return Response({"results": EndpointTokenSerializer(endpoint.tokens.all(), many=True).data})

    def post(self, request: Request, endpoint_id: int) -> Response:
        """`{"name"?}`: a token that calls this endpoint only. `token` is in this answer alone: keep it."""
        endpoint = selectors.endpoint_of(request.user, endpoint_id)
        saved, token = services.create_token(endpoint, request.data.get("name", ""))
        return Response({**EndpointTokenSerializer(saved).data, "token": token}, status=status.HTTP_201_CREATED)


@documented("endpoint_token")
class EndpointTokenDetailView(APIView):
    def delete(self, request: Request, endpoint_id: int, token_id: int) -> Response:
        """Revoke the token: calls with it answer 401 from now on."""
        endpoint = selectors.endpoint_of(request.user, endpoint_id)
        services.revoke_token(get_or_404(EndpointToken.objects.filter(endpoint=endpoint), token_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _read_body(request: Request, limit: int) -> bytes | None:
    """The raw body, or None when it is over `limit` (refused from Content-Length before reading)."""
    raw_request = request._request
    try:
        length = int(raw_request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        return None
    if hasattr(raw_request, "_body"):  # already read (a form-encoded body read by the CSRF check)
        data = raw_request._body
    else:
        data = raw_request.read(limit + 1)
    return None if len(data) > limit else data


class PredictView(APIView):
    """`{"instances": [{"data": "<base64 image>"}, ...], "parameters"?: {...}}` -> `{"predictions": [...]}`,
    EasyMaker's bodies. Called with the account's token, an endpoint token or the session."""

    authentication_classes = [EndpointTokenAuthentication, TokenAuthentication, SessionAuthentication]
    parser_classes = [JSONParser]  # for the schema: `request.data` is never read (the body is read raw,
    # with the endpoint's size limit, by _read_body)

    @extend_schema(operation_id="endpoint_predict_post", request=PredictRequestSerializer, responses={
        200: PredictResponseSerializer,
        400: OpenApiResponse(description='{"detail", "errors"}: a bad body, instance or image (the field is named)'),
        401: OpenApiResponse(description="no or a wrong token"), 404: OpenApiResponse(description="no such endpoint"),
        409: OpenApiResponse(description="the endpoint is stopped"),
        413: OpenApiResponse(description="the body is over the endpoint's max_body_bytes"),
        429: OpenApiResponse(description="too many calls with this token (Retry-After says when to retry)"),
        503: OpenApiResponse(description="the model server is restarting"),
        504: OpenApiResponse(description="the model server did not answer in time")})
    def post(self, request: Request, endpoint_id: int) -> HttpResponse:
        started = time.perf_counter()
        endpoint = selectors.endpoint_for_call(request.user, endpoint_id, request.auth)
        who = f"t{request.auth.pk}" if isinstance(request.auth, EndpointToken) else f"u{request.user.pk}"
        allowed, wait = throttle.allow(f"{endpoint.pk}:{who}", endpoint.rate_per_minute)
        if not allowed:
            services.record_call(endpoint, 429, started, 0, request.auth)
            raise exceptions.Throttled(wait, f"too many calls with this token: this endpoint takes "
                                             f"{endpoint.rate_per_minute} per minute")
        raw = _read_body(request, endpoint.max_body_bytes)
        if raw is None:
            size = int(request._request.META.get("CONTENT_LENGTH") or 0) or endpoint.max_body_bytes + 1
            code, body = services.too_large(endpoint, size)
            instances = 0
        else:
            code, body, instances = services.call_endpoint(endpoint, raw)
        services.record_call(endpoint, code, started, instances, request.auth)
        return HttpResponse(body, status=code, content_type="application/json")


@documented("run_model_repository")
class ModelRepositoryView(APIView):
    """`?name=<model name>`: the run's model as a model repository for NVIDIA Triton / KServe (a zip of
    `<name>/1/model.onnx`, `<name>/config.pbtxt`, `<name>/labels.txt` and a README)."""

    def get(self, request: Request, run_id: int) -> FileResponse:
        run = run_of(request.user, run_id)
        path = services.model_repository(run, request.query_params.get("name") or None)
        return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name.removeprefix("repository-"),
                            content_type="application/zip")
