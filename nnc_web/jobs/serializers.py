from rest_framework import serializers

from nnc_web.jobs.models import Job
from nnc_web.jobs.selectors import job_targets


class JobSerializer(serializers.ModelSerializer):
    """`target`: the run or dataset the job worked on (see selectors.job_targets); a list view passes
    them all in the context as `targets`, looked up at once."""

    datasets = serializers.SerializerMethodField()
    target = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "kind", "plugin_id", "title", "params", "queue", "state", "progress_done",
                  "progress_total", "message", "cancel_requested", "last_seq", "created_at", "started_at",
                  "finished_at", "worker", "datasets", "target"]

    def get_datasets(self, job: Job) -> list[dict]:
        return [{"id": d.id, "name": d.name} for d in sorted(job.datasets.all(), key=lambda d: d.pk)]

    def get_target(self, job: Job) -> dict | None:
        targets = self.context.get("targets")
        return targets[job.pk] if targets is not None and job.pk in targets else job_targets([job])[job.pk]
