"""`manage.py project create <name> --user U --train-dataset ID --valid-dataset ID [--config k=v ...]`."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from nnc_web.projects import services


class Command(BaseCommand):
    help = "Create a project (headless)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["create"])
        parser.add_argument("name")
        parser.add_argument("--user", required=True)
        parser.add_argument("--train-dataset", type=int, required=True)
        parser.add_argument("--valid-dataset", type=int, required=True)
        parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")

    def handle(self, *args, **options) -> None:
        try:
            user = get_user_model().objects.get(username=options["user"])
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"no user {options['user']!r}") from exc
        config = {}
        for item in options["config"]:
            key, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--config {item!r}: use KEY=VALUE")
            config[key.strip()] = value
        project, errors = services.create_project(user, options["name"], train_dataset=options["train_dataset"],
                                                  valid_dataset=options["valid_dataset"])
        if not errors:
            errors = services.update_project(project, {"config": config})
            if errors:
                project.delete()
        if errors:
            raise CommandError("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.stdout.write(f"project {project.pk} {project.name}")
