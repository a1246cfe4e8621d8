"""Reads of uploads and datasets, always scoped to the requesting user."""
from __future__ import annotations

from django.db.models import QuerySet

from nnc_web.datasets.models import Dataset, Upload
from nnc_web.selectors import get_or_404


def datasets_of(user) -> QuerySet[Dataset]:
    return Dataset.objects.filter(owner=user)


def dataset_of(user, dataset_id: int) -> Dataset:
    return get_or_404(datasets_of(user), dataset_id)


def uploads_of(user) -> QuerySet[Upload]:
    return Upload.objects.filter(owner=user)


def upload_of(user, upload_id: int) -> Upload:
    return get_or_404(uploads_of(user), upload_id)
