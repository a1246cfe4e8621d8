from __future__ import annotations

from rest_framework import serializers

from nnc_web.serving import selectors
from nnc_web.serving.models import Endpoint, EndpointToken


def predict_url(endpoint: Endpoint, request) -> str:
    path = f"/api/endpoints/{endpoint.pk}/predict/"
    return request.build_absolute_uri(path) if request is not None else path


def curl_line(endpoint: Endpoint, url: str) -> str:
    return (f'curl -X POST -H "Authorization: Token $TOKEN" -H "Content-Type: application/json" '
            f"-d @input.json {url}")


class EndpointSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    curl = serializers.SerializerMethodField()
    run_name = serializers.CharField(source="run.name", read_only=True)
    project = serializers.IntegerField(source="run.project_id", read_only=True)
    project_name = serializers.CharField(source="run.project.name", read_only=True)
    model = serializers.SerializerMethodField()
    stats = serializers.SerializerMethodField()
    tokens = serializers.SerializerMethodField()

    class Meta:
        model = Endpoint
        fields = ["id", "name", "run", "run_name", "project", "project_name", "state", "url", "curl", "max_instances",
                  "max_body_bytes", "max_image_pixels", "rate_per_minute", "model", "stats", "tokens", "created_at"]

    def get_url(self, endpoint: Endpoint) -> str:
        return predict_url(endpoint, self.context.get("request"))

    def get_curl(self, endpoint: Endpoint) -> str:
        return curl_line(endpoint, self.get_url(endpoint))

    def get_model(self, endpoint: Endpoint) -> dict:
        return selectors.model_of(endpoint)

    def get_stats(self, endpoint: Endpoint) -> dict:
        return selectors.stats_of(endpoint)

    def get_tokens(self, endpoint: Endpoint) -> int:
        return endpoint.tokens.count()


class EndpointTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = EndpointToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at"]


class PredictRequestSerializer(serializers.Serializer):
    """For the OpenAPI schema: EasyMaker's request body."""

    instances = serializers.ListField(child=serializers.DictField(), min_length=1, help_text=(
        'images: [{"data": "<base64 of the image file>"}, ...]; tabular models: [{"<column>": value, ...}]'))
    parameters = serializers.DictField(required=False, help_text=(
        '{"top_k": n} (ranked labels to return), {"heatmap": true} (anomaly models: a base64 PNG heat map)'))


class PredictResponseSerializer(serializers.Serializer):
    predictions = serializers.ListField(child=serializers.JSONField(), help_text=(
        'one per instance: classifiers [{"label", "score"}, ...] highest first; anomaly models {"score", '
        '"anomalous", "threshold", "heatmap"?}; tabular regressors the predicted number'))
