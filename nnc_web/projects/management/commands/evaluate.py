"""`manage.py evaluate <run id>`: evaluate a run's model bundle over its validation dataset again."""
import torch
from django.core.management.base import BaseCommand, CommandError

from nnc_web.engine.reporting import ConsoleReporter, UserError
from nnc_web.engine.training.bundle import load_bundle
from nnc_web.engine.training.data import load_classification_csv
from nnc_web.engine.training.evaluation import evaluate_into
from nnc_web.projects.models import Run


class Command(BaseCommand):
    help = "Evaluate a finished run: writes output_result.csv and metrics.json into its folder."

    def add_arguments(self, parser) -> None:
        parser.add_argument("run", type=int)
        parser.add_argument("--wait", action="store_true", help="accepted for symmetry: evaluation runs here")

    def handle(self, *args, **options) -> None:
        run = Run.objects.select_related("valid_dataset").filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(f"no run {options['run']}")
        folder = run.folder()
        try:
            model, manifest = load_bundle(folder / "model")
            if run.valid_dataset is None:
                raise UserError("the run's validation dataset was deleted")
            data = load_classification_csv(run.valid_dataset.csv_path())
            reporter = ConsoleReporter(folder, quiet=False)
            metrics = evaluate_into(folder, model, manifest["backbone"], manifest["input_size"], data,
                                    torch.device("cpu"), reporter)
        except UserError as exc:
            raise CommandError(str(exc)) from exc
        run.metrics = metrics
        run.save(update_fields=["metrics"])
        self.stdout.write(str(folder))
