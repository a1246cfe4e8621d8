"""Internal job: evaluate a finished run again (its bundle over its validation dataset)."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from nnc_web.engine.errors import UserError
from nnc_web.plugins.context import RunInputs
from nnc_web.plugins.registry import Plugin, register
from nnc_web.plugins.transfer_learning import complete

Evaluator = Callable[[object, RunInputs, Path], dict]


def _anomaly(ctx, run_row: RunInputs, folder: Path) -> dict:
    from django.conf import settings

    from nnc_web.engine.anomaly.bundle import load_anomaly_bundle
    from nnc_web.engine.anomaly.data import load_anomaly_csv
    from nnc_web.engine.anomaly.evaluation import evaluate_anomaly
    from nnc_web.engine.training.trainer import resolve_device

    model, _ = load_anomaly_bundle(folder, str(resolve_device("auto")))
    model.max_pixels = settings.NNC_MAX_IMAGE_PIXELS
    data = load_anomaly_csv(run_row.valid_csv)
    kept = {k: v for k, v in (run_row.metrics or {}).items() if k in ("warnings", "chosen_threshold")}
    return evaluate_anomaly(model, data, ctx.workdir, ctx, batch_size=run_row.config.get("batch_size", 16),
                            extra=kept)


def _tabular(ctx, run_row: RunInputs, folder: Path) -> dict:
    from nnc_web.engine.training.tabular_mlp import (
        load_tabular_bundle,
        load_tabular_csv,
        predict_tabular,
        tabular_metrics,
        write_tabular_output,
    )

    model, _ = load_tabular_bundle(folder)
    data = load_tabular_csv(run_row.valid_csv)
    write_tabular_output(ctx.workdir / "output_result.csv", data, predict_tabular(model, data))
    metrics = tabular_metrics(model, data)
    (ctx.workdir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    ctx.log(f"evaluated {len(data.y)} rows")
    return metrics


def _zero_shot(ctx, run_row: RunInputs, folder: Path) -> dict:
    from nnc_web.engine.clip.evaluation import evaluate_zero_shot
    from nnc_web.engine.clip.model import load_clip_classifier
    from nnc_web.engine.training.trainer import resolve_device

    device = resolve_device("auto")
    model, manifest = load_clip_classifier(folder, device)
    return evaluate_zero_shot(ctx.workdir, model, manifest, run_row.valid_csv, device, ctx,
                              batch_size=run_row.config.get("batch_size", 64))


def _classifier(ctx, run_row: RunInputs, folder: Path) -> dict:
    from nnc_web.engine.training.bundle import load_bundle
    from nnc_web.engine.training.data import load_classification_csv
    from nnc_web.engine.training.evaluation import evaluate_into
    from nnc_web.engine.training.trainer import resolve_device

    model, manifest = load_bundle(folder)
    data = load_classification_csv(run_row.valid_csv)
    return evaluate_into(ctx.workdir, model, manifest["backbone"], manifest["input_size"], data,
                         resolve_device("auto"), ctx)


# A bundle's manifest `architecture` -> how its run is evaluated again.
EVALUATORS: dict[str, Evaluator] = {"padim": _anomaly, "patchcore": _anomaly, "tabular_mlp": _tabular,
                                    "clip_zero_shot": _zero_shot, "transfer_classifier": _classifier}


def run(ctx, params: dict) -> dict:
    run_row = params["_run"]
    if run_row.valid_csv is None:
        raise UserError("the run's validation dataset was deleted")
    folder = ctx.workdir / "model"
    architecture = json.loads((folder / "manifest.json").read_text()).get("architecture")
    if architecture not in EVALUATORS:
        raise UserError(f"runs of this model ({architecture}) cannot be evaluated again")
    return {"metrics": EVALUATORS[architecture](ctx, run_row, folder), "history": run_row.history}


PLUGIN = register(Plugin(
    id="evaluation", kind="postprocess", title="Evaluation", hidden=True,
    description="Evaluates a run's model over its validation dataset again.",
    params=(), runner=run, completer=complete, uses_model=lambda params: True,
))
