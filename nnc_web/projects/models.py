"""Projects: a training set-up (datasets + config). Training runs arrive with the training issue."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from nnc_web import storage


class Project(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=64)
    description = models.TextField(blank=True)
    train_dataset = models.ForeignKey("datasets.Dataset", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    valid_dataset = models.ForeignKey("datasets.Dataset", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_project_name_per_owner")]

    def __str__(self) -> str:
        return self.name

    def folder(self) -> Path:
        return storage.user_dir(self.owner_id) / "projects" / str(self.pk)


class Run(models.Model):
    """One training run of a project: its plugin, parameters, config and datasets as they were, the
    job that ran it, and the results (metrics, history) once it finished."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    plugin_id = models.CharField(max_length=64)
    params = models.JSONField(default=dict)
    config = models.JSONField(default=dict)
    train_dataset = models.ForeignKey("datasets.Dataset", null=True, on_delete=models.SET_NULL, related_name="+")
    valid_dataset = models.ForeignKey("datasets.Dataset", null=True, on_delete=models.SET_NULL, related_name="+")
    metrics = models.JSONField(default=dict, blank=True)
    history = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.project}"

    def folder(self) -> Path:
        return self.project.folder() / "results" / str(self.pk)
