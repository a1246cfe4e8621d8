from django.contrib import admin, messages
from django.utils.html import format_html

from nnc_web.jobs import services
from nnc_web.jobs.models import Job, JobEvent

LOG_LINES = 2000  # the admin page shows the job's last lines


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Jobs are records of work: staff read them (with their log) and may cancel them; the state,
    progress and owner change only through the job's own lifecycle, never by hand."""

    list_display = ["id", "owner", "plugin_id", "state", "progress_done", "progress_total", "created_at",
                    "finished_at"]
    list_filter = ["state", "kind", "plugin_id"]
    search_fields = ["owner__username", "plugin_id", "title"]
    fields = ["owner", "title", "kind", "plugin_id", "queue", "state", "message", "progress_done", "progress_total",
              "cancel_requested", "discard_results", "params", "context", "result_dir", "created_at", "started_at",
              "heartbeat_at", "finished_at", "last_seq", "log"]
    readonly_fields = [f for f in fields if f != "title"]
    actions = ["cancel_jobs"]

    def has_add_permission(self, request) -> bool:
        return False  # jobs are made by running a plugin

    @admin.display(description="Log")
    def log(self, job: Job) -> str:
        events = JobEvent.objects.filter(job=job, kind=JobEvent.Kind.LOG).order_by("-seq")[:LOG_LINES]
        lines = [str(e.data.get("line", "")) for e in reversed(list(events))]
        return format_html('<pre style="max-height: 480px; overflow: auto; white-space: pre-wrap">{}</pre>',
                           "\n".join(lines) or "(no log lines)")

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request, queryset) -> None:
        count = 0
        for job in queryset:
            if not job.finished:
                services.cancel_job(job)
                count += 1
        self.message_user(request, f"asked {count} job(s) to cancel", messages.SUCCESS)
