from django.contrib import admin

from nnc_web.serving.models import Endpoint, EndpointStats, EndpointToken


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    """Staff see who serves what and may stop an endpoint (edit its state); endpoints are made from runs."""

    list_display = ["id", "owner", "name", "run", "state", "rate_per_minute", "created_at"]
    list_filter = ["state"]
    search_fields = ["owner__username", "name"]
    readonly_fields = ["owner", "run", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(EndpointToken)
class EndpointTokenAdmin(admin.ModelAdmin):
    """Tokens can be revoked (deleted) here; only their prefix is shown (the token itself is never kept)."""

    list_display = ["id", "endpoint", "name", "prefix", "created_at", "last_used_at"]
    readonly_fields = ["endpoint", "name", "prefix", "created_at", "last_used_at"]
    exclude = ["digest"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(EndpointStats)
class EndpointStatsAdmin(admin.ModelAdmin):
    list_display = ["endpoint", "requests", "errors", "instances", "batches", "largest_batch", "last_request_at"]
    readonly_fields = [f.name for f in EndpointStats._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
