from django.contrib import admin

from nnc_web.datasets.models import Dataset, Upload


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "owner", "rows", "size_bytes", "plugin_id", "created_at"]
    list_filter = ["plugin_id"]
    search_fields = ["name", "owner__username"]


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["id", "filename", "owner", "size", "kind", "created_at"]
    search_fields = ["filename", "owner__username"]
