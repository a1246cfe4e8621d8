"""Post-processing runs: a plugin job on a training run's result folder or on a dataset, and the
files it produced there (NNC: "saved in the result folder with the file name given in output")."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Postprocess(models.Model):
    class Kind(models.TextChoices):
        TABLE = "table"
        IMAGE = "image"
        PLOT = "plot"
        FILE = "file"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="postprocesses")
    job = models.OneToOneField("jobs.Job", on_delete=models.CASCADE, related_name="postprocess")
    run = models.ForeignKey("projects.Run", null=True, blank=True, on_delete=models.CASCADE,
                            related_name="postprocesses")
    dataset = models.ForeignKey("datasets.Dataset", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="postprocesses")
    plugin_id = models.CharField(max_length=64)
    # [{"path": "tsne.csv", "kind": "table"}, ...], relative to the result (or dataset outputs) folder
    outputs = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.plugin_id} on {'run ' + str(self.run_id) if self.run_id else 'dataset ' + str(self.dataset_id)}"
