from django.contrib import admin, messages

from nnc_web.jobs import services
from nnc_web.jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "plugin_id", "state", "progress_done", "progress_total", "created_at",
                    "finished_at"]
    list_filter = ["state", "kind", "plugin_id"]
    search_fields = ["owner__username", "plugin_id", "title"]
    readonly_fields = ["last_seq", "heartbeat_at", "started_at", "finished_at", "created_at"]
    actions = ["cancel_jobs"]

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request, queryset) -> None:
        count = 0
        for job in queryset:
            if not job.finished:
                services.cancel_job(job)
                count += 1
        self.message_user(request, f"asked {count} job(s) to cancel", messages.SUCCESS)
