from rest_framework import serializers

from nnc_web.projects import selectors
from nnc_web.projects.models import Project, Run


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "description", "train_dataset", "valid_dataset", "deleted_datasets", "config",
                  "created_at"]


class RunSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()
    settings = serializers.SerializerMethodField()
    setting_labels = serializers.SerializerMethodField()
    exportable = serializers.SerializerMethodField()
    can_resume = serializers.SerializerMethodField()
    project_name = serializers.CharField(source="project.name", read_only=True)

    class Meta:
        model = Run
        fields = ["id", "name", "project", "project_name", "job", "state", "plugin_id", "params", "config",
                  "settings", "setting_labels", "exportable", "train_dataset", "valid_dataset", "deleted_datasets", "metrics", "history",
                  "can_resume", "created_at"]

    def get_state(self, run: Run) -> str:
        return run.job.state if run.job else "unknown"

    def get_settings(self, run: Run) -> dict:
        return selectors.run_settings(run)

    def get_setting_labels(self, run: Run) -> dict[str, str]:
        return selectors.run_setting_labels(run)

    def get_exportable(self, run: Run) -> bool:
        """Whether its model has TorchScript / ONNX downloads (classifiers, detectors, segmenters)."""
        return selectors.run_exportable(run)

    def get_can_resume(self, run: Run) -> bool:
        return selectors.resume_refusal(run) is None
