"""`manage.py predict <run id> <image | folder | CSV> [--json]`: a run's model answers, headless, exactly
what its endpoint answers (the same predictor, checks and preprocessing)."""
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from nnc_web import config
from nnc_web.engine.errors import UserError
from nnc_web.engine.serving.files import instances_from
from nnc_web.engine.serving.instances import Limits, Parameters, RequestError
from nnc_web.engine.serving.predictor import load_predictor, read_manifest, spec_for
from nnc_web.projects.models import Run
from nnc_web.serving import conf
from nnc_web.serving.worker import serving_device

CHUNK = 32


def _text(prediction) -> str:
    if isinstance(prediction, list):
        return ", ".join(f"{p['label']} {100 * p['score']:.1f}%" for p in prediction[:3])
    if isinstance(prediction, dict):
        verdict = "anomalous" if prediction["anomalous"] else "normal"
        return f"score {prediction['score']:.6g} ({verdict}, threshold {prediction['threshold']:.6g})"
    return f"{prediction:.6g}"


class Command(BaseCommand):
    help = "Predict with a run's model: an image, a folder of images or a CSV (the endpoint's answers)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("run", type=int, help="the run id")
        parser.add_argument("input", type=Path, help="an image, a folder of images, or a CSV")
        parser.add_argument("--json", action="store_true", help="one JSON document: [{input, prediction | error}]")
        parser.add_argument("--top-k", type=int, default=None, help="ranked labels per answer (default: all)")
        parser.add_argument("--heatmap", action="store_true", help="anomaly models: include the base64 PNG heat map")

    def handle(self, *args, **options) -> None:
        run = Run.objects.filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(f"no run {options['run']}")
        bundle = run.folder() / "model"
        try:
            manifest = read_manifest(bundle)
            spec = spec_for(manifest)
            items = instances_from(options["input"], spec.inputs, manifest)
            predictor = load_predictor(bundle, serving_device(), conf.RUNTIME, config.data_dir() / "cache" / "serving-onnx")
        except UserError as exc:
            raise CommandError(str(exc)) from exc
        parameters = Parameters(top_k=options["top_k"], heatmap=options["heatmap"] and spec.task == "anomaly")
        limits = Limits(max_instances=CHUNK)
        results, failed = [], 0
        for start in range(0, len(items), CHUNK):
            chunk = [{"input": name} for name, _ in items[start:start + CHUNK]]
            prepared = []
            for result, (_, instance) in zip(chunk, items[start:start + CHUNK], strict=True):
                try:  # one bad file is reported, the others still answered
                    prepared.append((result, predictor.prepare(instance, "input", parameters, limits)))
                except RequestError as exc:
                    failed += 1
                    result["error"] = exc.detail.removeprefix("input.data: ")
            outputs = predictor.forward([item for _, item in prepared]) if prepared else []
            for (result, item), output in zip(prepared, outputs, strict=True):
                result["prediction"] = predictor.answer(output, item, parameters)
            results.extend(chunk)
        if options["json"]:
            self.stdout.write(json.dumps(results, indent=1))
        else:
            for result in results:
                answer = _text(result["prediction"]) if "prediction" in result else f"error: {result['error']}"
                self.stdout.write(f"{result['input']}\t{answer}")
        if failed:
            raise CommandError(f"{failed} of {len(items)} inputs could not be read")
