from django.core.management.base import BaseCommand

from nnc_web.jobs.services import reap_lost_jobs


class Command(BaseCommand):
    help = "Mark running jobs whose worker stopped sending heartbeats as failed ('worker lost')."

    def handle(self, *args, **options) -> None:
        lost = reap_lost_jobs()
        self.stdout.write(f"{len(lost)} lost job(s): {', '.join(map(str, lost)) or '-'}")
