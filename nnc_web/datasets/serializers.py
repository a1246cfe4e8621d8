from rest_framework import serializers

from nnc_web.datasets.models import Dataset, Upload
from nnc_web.datasets.palette import palette


class UploadSerializer(serializers.ModelSerializer):
    class Meta:
        model = Upload
        fields = ["id", "filename", "size", "expected_size", "state", "kind", "created_at"]


class DatasetSerializer(serializers.ModelSerializer):
    palette = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = ["id", "name", "plugin_id", "job", "csv_name", "rows", "columns", "class_names",
                  "class_counts", "palette", "size_bytes", "created_at"]

    def get_palette(self, dataset: Dataset) -> list[str]:
        return palette(len(dataset.class_names))
