"""`manage.py evaluate <run id>`: evaluate a run's model bundle over its validation dataset again."""
import json

from django.core.management.base import BaseCommand, CommandError

from nnc_web.engine.reporting import ConsoleReporter, UserError
from nnc_web.plugins.evaluation import EVALUATORS
from nnc_web.projects.inputs import run_inputs
from nnc_web.projects.models import Run


class Command(BaseCommand):
    help = "Evaluate a finished run: writes output_result.csv and metrics.json into its folder."

    def add_arguments(self, parser) -> None:
        parser.add_argument("run", type=int)
        parser.add_argument("--wait", action="store_true", help="accepted for symmetry: evaluation runs here")

    def handle(self, *args, **options) -> None:
        run = Run.objects.select_related("project", "train_dataset", "valid_dataset").filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(f"no run {options['run']}")
        folder = run.folder()
        try:
            if run.valid_dataset is None:
                raise UserError("the run's validation dataset was deleted")
            try:
                architecture = json.loads((folder / "model" / "manifest.json").read_text()).get("architecture")
            except (OSError, ValueError) as exc:
                raise UserError("this run has no trained model (no readable model/manifest.json)") from exc
            if architecture not in EVALUATORS:  # the same evaluators as the run page's *Evaluate again*
                raise UserError(f"runs of this model ({architecture}) cannot be evaluated again")
            metrics = EVALUATORS[architecture](ConsoleReporter(folder, quiet=False), run_inputs(run), folder / "model")
        except UserError as exc:
            raise CommandError(str(exc)) from exc
        run.metrics = metrics
        run.save(update_fields=["metrics"])
        self.stdout.write(str(folder))
