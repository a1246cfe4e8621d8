from django.contrib import admin

from nnc_web.projects.models import Project


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "owner", "train_dataset", "valid_dataset", "created_at"]
    search_fields = ["name", "owner__username"]
