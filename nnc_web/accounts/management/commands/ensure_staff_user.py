"""Create the first staff user without prompts: NNC_ADMIN_USERNAME / NNC_ADMIN_PASSWORD."""
import os

from django.core.management.base import BaseCommand, CommandError

from nnc_web.accounts.services import ensure_staff_user


class Command(BaseCommand):
    help = "Create or update a staff superuser from NNC_ADMIN_USERNAME, NNC_ADMIN_PASSWORD, NNC_ADMIN_EMAIL."

    def handle(self, *args, **options) -> None:
        username = os.environ.get("NNC_ADMIN_USERNAME", "")
        password = os.environ.get("NNC_ADMIN_PASSWORD", "")
        if not username or not password:
            raise CommandError("set NNC_ADMIN_USERNAME and NNC_ADMIN_PASSWORD")
        user, created = ensure_staff_user(username, password, os.environ.get("NNC_ADMIN_EMAIL", ""))
        self.stdout.write(f"{'created' if created else 'updated'} staff user {user.username}")
