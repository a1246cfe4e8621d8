"""Reads of uploads and datasets, always scoped to the requesting user."""
from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from nnc_web.datasets.models import Dataset, Upload


def datasets_of(user) -> QuerySet[Dataset]:
    return Dataset.objects.filter(owner=user)


def dataset_of(user, dataset_id: int) -> Dataset:
    try:
        return datasets_of(user).get(pk=dataset_id)
    except Dataset.DoesNotExist as exc:
        raise Http404 from exc


def uploads_of(user) -> QuerySet[Upload]:
    return Upload.objects.filter(owner=user)


def upload_of(user, upload_id: int) -> Upload:
    try:
        return uploads_of(user).get(pk=upload_id)
    except Upload.DoesNotExist as exc:
        raise Http404 from exc
