"""Shared read helpers: every object is looked up inside the requesting user's own queryset."""
from __future__ import annotations

from django.db.models import Model, QuerySet
from django.http import Http404


def get_or_404(queryset: QuerySet, pk: int) -> Model:
    """The object with `pk` in `queryset`; anything else (another user's, missing) is a 404."""
    try:
        return queryset.get(pk=pk)
    except queryset.model.DoesNotExist as exc:
        raise Http404 from exc


def parse_id(value) -> int:
    """An object id from a request: a whole number (or its digits), never a bool, float or 1e400."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        raise ValueError("not an id")
    return int(value)
