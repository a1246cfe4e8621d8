"""Projects: a training set-up (datasets + config), and its training runs."""
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
    # {"train_dataset": "<name>", ...}: datasets that were deleted while chosen here, so the page says so
    deleted_datasets = models.JSONField(default=dict, blank=True)
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
    name = models.CharField(max_length=64, blank=True)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    plugin_id = models.CharField(max_length=64)
    params = models.JSONField(default=dict)
    config = models.JSONField(default=dict)
    train_dataset = models.ForeignKey("datasets.Dataset", null=True, on_delete=models.SET_NULL, related_name="+")
    valid_dataset = models.ForeignKey("datasets.Dataset", null=True, on_delete=models.SET_NULL, related_name="+")
    metrics = models.JSONField(default=dict, blank=True)
    history = models.JSONField(default=list, blank=True)
    deleted_datasets = models.JSONField(default=dict, blank=True)  # as Project.deleted_datasets
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        # "" only while a run is being created (its default name needs its id)
        constraints = [models.UniqueConstraint(fields=["project", "name"], condition=~models.Q(name=""),
                                               name="unique_run_name_per_project")]

    def __str__(self) -> str:
        return f"{self.name or f'run {self.pk}'} of {self.project}"

    def folder(self) -> Path:
        return self.project.folder() / "results" / str(self.pk)
