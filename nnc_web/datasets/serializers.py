from rest_framework import serializers

from nnc_web.datasets.models import Dataset, Upload
from nnc_web.datasets.palette import ANOMALY_COLOURS, palette
from nnc_web.datasets.services import counted_unit


class UploadSerializer(serializers.ModelSerializer):
    class Meta:
        model = Upload
        fields = ["id", "filename", "size", "expected_size", "state", "kind", "created_at"]


class DatasetSerializer(serializers.ModelSerializer):
    palette = serializers.SerializerMethodField()
    counts_of = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = ["id", "name", "plugin_id", "job", "csv_name", "rows", "columns", "class_names",
                  "class_counts", "counts_of", "palette", "size_bytes", "created_at"]

    def get_palette(self, dataset: Dataset) -> list[str]:
        if dataset.class_names == ["normal", "anomalous"]:  # as the anomaly evaluation draws them
            return list(ANOMALY_COLOURS)
        return palette(len(dataset.class_names))

    def get_counts_of(self, dataset: Dataset) -> str:
        """What class_counts counts: images, rows, boxes or pixels (the histogram's heading)."""
        return counted_unit(dataset)
