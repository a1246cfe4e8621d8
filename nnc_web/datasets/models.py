"""Uploads (raw archives/CSVs as received) and datasets (immutable NNC CSV + files)."""
from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.db import models

from nnc_web import storage


class Upload(models.Model):
    """A file as received. Large files arrive in chunks (state `uploading`, `size` = bytes so far)
    and become `ready` once complete and checked; only ready uploads feed plugins."""

    class State(models.TextChoices):
        UPLOADING = "uploading"
        READY = "ready"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    filename = models.CharField(max_length=255)
    size = models.BigIntegerField(default=0)
    expected_size = models.BigIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.READY)
    kind = models.CharField(max_length=10)  # zip | tar | csv (archive while uploading)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.filename

    def folder(self) -> Path:
        return storage.uploads_dir(self.owner_id) / str(self.pk)

    def absolute_path(self) -> Path:
        return self.folder() / stored_name(self.filename)


def stored_name(filename: str) -> str:
    """The upload's name on disk: the user's name reduced to safe characters (never '.' or '..')."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", filename).lstrip(".")
    return cleaned[:200] or "upload"


class Dataset(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=64)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="datasets")
    plugin_id = models.CharField(max_length=64, blank=True)
    csv_name = models.CharField(max_length=100)
    rows = models.BigIntegerField(default=0)
    columns = models.JSONField(default=list)
    class_names = models.JSONField(default=list)
    class_counts = models.JSONField(default=list)  # rows (or boxes) per class, same order as class_names
    size_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.rows} rows)"

    def folder(self) -> Path:
        return storage.datasets_dir(self.owner_id) / str(self.pk)

    def csv_path(self) -> Path:
        return self.folder() / self.csv_name

    def index_path(self) -> Path:
        return self.folder() / ".rows.npy"
