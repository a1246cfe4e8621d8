from django.contrib import admin

from nnc_web.projects.models import Project, Run


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "owner", "train_dataset", "valid_dataset", "created_at"]
    search_fields = ["name", "owner__username"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "project", "plugin_id", "job", "created_at"]
    search_fields = ["name", "project__name", "project__owner__username"]
