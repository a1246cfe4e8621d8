from __future__ import annotations

from rest_framework import serializers

from nnc_web.evaluations.models import Postprocess


class PostprocessSerializer(serializers.ModelSerializer):
    state = serializers.CharField(source="job.state", read_only=True)
    message = serializers.CharField(source="job.message", read_only=True)
    title = serializers.CharField(source="job.title", read_only=True)
    params = serializers.JSONField(source="job.params", read_only=True)

    class Meta:
        model = Postprocess
        fields = ["id", "job", "run", "dataset", "plugin_id", "title", "state", "message", "params", "outputs",
                  "created_at"]
