from rest_framework import serializers

from nnc_web.jobs.models import Job


class JobSerializer(serializers.ModelSerializer):
    datasets = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "kind", "plugin_id", "title", "params", "queue", "state", "progress_done",
                  "progress_total", "message", "cancel_requested", "last_seq", "created_at", "started_at",
                  "finished_at", "datasets"]

    def get_datasets(self, job: Job) -> list[dict]:
        return [{"id": d.id, "name": d.name} for d in sorted(job.datasets.all(), key=lambda d: d.pk)]
