"""API conventions shared by every app: error format and small helpers."""
from __future__ import annotations

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from nnc_web.engine.reporting import UserError


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """Every error answers `{"detail": ..., "errors": {field: [...]}}`; user errors become 400."""
    if isinstance(exc, UserError):
        exc = exceptions.ValidationError({"detail": str(exc)})
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        if isinstance(data, dict):
            detail = data.pop("detail", None)
            errors = {k: v if isinstance(v, list) else [v] for k, v in data.items()}
            if detail is None:
                first = next(iter(errors.items()), None)
                detail = f"{first[0]}: {first[1][0]}" if first else "invalid input"
                if first and first[0] == "non_field_errors":
                    detail = str(first[1][0])
            elif isinstance(detail, list):
                detail = " ".join(str(d) for d in detail)
            response.data = {"detail": str(detail), "errors": errors}
        else:
            response.data = {"detail": " ".join(str(d) for d in data), "errors": {}}
    elif isinstance(exc, Http404 | exceptions.NotFound):
        response.data = {"detail": "not found", "errors": {}}
    elif isinstance(data, dict) and "detail" in data:
        response.data = {"detail": str(data["detail"]), "errors": {}}
    return response


def field_errors(errors: dict[str, str]) -> Response:
    """A 400 with one message per field, in the API's error format."""
    detail = "; ".join(f"{name}: {message}" for name, message in errors.items())
    return Response({"detail": detail, "errors": {k: [v] for k, v in errors.items()}},
                    status=status.HTTP_400_BAD_REQUEST)


def documented(operation: str, response=None, request=None):
    """Describe an APIView for the OpenAPI schema: one operationId per HTTP method.

    `response`/`request` are serializers where the view has one; plain JSON objects otherwise.
    """
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import extend_schema, extend_schema_view

    def wrap(cls):
        methods = [m for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)]
        return extend_schema_view(**{
            method: extend_schema(operation_id=f"{operation}_{method}", responses=response or OpenApiTypes.OBJECT,
                                  request=request or OpenApiTypes.OBJECT)
            for method in methods
        })(cls)

    return wrap


class ObjectJSONParser(JSONParser):
    """JSON bodies must be objects: every endpoint reads named fields, so `false`, `[null]` or a bare
    string is a 400 in the usual error format rather than an AttributeError (500) in a view."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if not isinstance(data, dict):
            raise exceptions.ParseError("the request body must be a JSON object of fields")
        return data
