"""Internal job: evaluate a finished run again (its bundle over its validation dataset)."""
from __future__ import annotations

import json

from nnc_web.engine.errors import UserError
from nnc_web.plugins.registry import Plugin, register
from nnc_web.plugins.transfer_learning import complete


def run(ctx, params: dict) -> dict:
    from nnc_web.engine.anomaly.bundle import is_anomaly_bundle, load_anomaly_bundle
    from nnc_web.engine.anomaly.data import load_anomaly_csv
    from nnc_web.engine.anomaly.evaluation import evaluate_anomaly
    from nnc_web.engine.training.bundle import load_bundle
    from nnc_web.engine.training.data import load_classification_csv
    from nnc_web.engine.training.evaluation import evaluate_into
    from nnc_web.engine.training.tabular_mlp import (
        load_tabular_bundle,
        load_tabular_csv,
        predict_tabular,
        tabular_metrics,
        write_tabular_output,
    )
    from nnc_web.engine.training.trainer import resolve_device

    run_row = params["_run"]
    if run_row.valid_csv is None:
        raise UserError("the run's validation dataset was deleted")
    folder = ctx.workdir / "model"
    manifest = json.loads((folder / "manifest.json").read_text())
    if is_anomaly_bundle(manifest):
        from django.conf import settings

        model, manifest = load_anomaly_bundle(folder, str(resolve_device("auto")))
        model.max_pixels = settings.NNC_MAX_IMAGE_PIXELS
        data = load_anomaly_csv(run_row.valid_csv)
        kept = {k: v for k, v in (run_row.metrics or {}).items() if k in ("warnings", "chosen_threshold")}
        metrics = evaluate_anomaly(model, data, ctx.workdir, ctx, batch_size=run_row.config.get("batch_size", 16),
                                   extra=kept)
    elif manifest["architecture"] == "tabular_mlp":
        model, _ = load_tabular_bundle(folder)
        data = load_tabular_csv(run_row.valid_csv)
        write_tabular_output(ctx.workdir / "output_result.csv", data, predict_tabular(model, data))
        metrics = tabular_metrics(model, data)
        (ctx.workdir / "metrics.json").write_text(json.dumps(metrics, indent=1))
        ctx.log(f"evaluated {len(data.y)} rows")
    else:
        model, manifest = load_bundle(folder)
        data = load_classification_csv(run_row.valid_csv)
        metrics = evaluate_into(ctx.workdir, model, manifest["backbone"], manifest["input_size"], data,
                                resolve_device("auto"), ctx)
    return {"metrics": metrics, "history": run_row.history}


PLUGIN = register(Plugin(
    id="evaluation", kind="postprocess", title="Evaluation", hidden=True,
    description="Evaluates a run's model over its validation dataset again.",
    params=(), runner=run, completer=complete, uses_model=lambda params: True,
))
