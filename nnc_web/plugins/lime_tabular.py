"""Post-processing (XAI): LIME on a tabular model, for one row (`lime_tabular`: NNC's five-line CSV and
a bar chart) or every row of a CSV (`lime_tabular_batch`: a weight per feature and row, mean |weight|
bars and a beeswarm). The parameter helpers are shared with Kernel SHAP (shap_tabular.py)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnc_web.engine.errors import UserError
from nnc_web.engine.reporting import check_stop
from nnc_web.plugins.postprocess import (
    input_param,
    output_errors,
    output_param,
    output_path,
    record_outputs,
    reserve_beside,
)
from nnc_web.plugins.registry import Param, Plugin, register

if TYPE_CHECKING:
    from nnc_web.engine.xai.tabular import TabularTask


def model_param() -> Param:
    return Param("model", "model", "model", required=True, label="Model",
                 help="this run's model bundle (a Tabular classifier/regressor)")


def train_param() -> Param:
    return Param("train", "csv", None, label="Training data",
                 help="the training CSV (empty: this run's training dataset)")


def index_param() -> Param:
    return Param("index", "int", 1, label="Row (1-based)", help="the row of input to explain, 1-based (1 = the first row)")


def class_param() -> Param:
    return Param("class_index", "int", 0, label="Class index", help="the class to explain (0 for a regressor)")


def tabular_task(ctx, params: dict) -> tuple[TabularTask, int]:
    """The model, the input and training rows and the features; the class checked against the model."""
    from nnc_web.engine.training.trainer import resolve_device
    from nnc_web.engine.xai.tabular import load_task

    train = params.get("train")
    if train is None:
        run = params["_workspace"].run
        if run is None or run.train_csv is None:
            raise UserError("give the training CSV as `train` (on a training run it defaults to the run's "
                            "training dataset)")
        train = run.train_csv
    device = resolve_device("auto")
    task = load_task(Path(params["model"]), Path(params["input"]), Path(train), device)
    class_index = task.model.check_class(params["class_index"])
    ctx.log(task.describe())
    ctx.log(f"explaining {task.target(class_index)} on {device}")
    return task, class_index


def feature_colours(task: TabularTask) -> np.ndarray:
    """The beeswarm's colour per row and feature: the value scaled to 0..1; none for a category."""
    from nnc_web.engine.xai.tabular import Encoding
    from nnc_web.engine.xai.tabular_plots import scaled

    grouped = Encoding(task.features, task.rows.x.shape[1]).group(task.rows.x)
    colours = scaled(grouped)
    colours[:, [j for j, f in enumerate(task.features) if f.categorical]] = np.nan
    return colours


def run_single(ctx, params: dict) -> list[Path]:
    from nnc_web.engine.xai.lime_tabular import TabularLime, write_lime_csv
    from nnc_web.engine.xai.tabular import display_values, pick_row
    from nnc_web.engine.xai.tabular_plots import importance_bars

    task, class_index = tabular_task(ctx, params)
    row = pick_row(task.rows, params["index"])
    explainer = TabularLime(task.model, task.features, task.train.x, params["num_samples"])
    explanation = explainer.explain(task.rows.x[row], class_index)
    path = output_path(ctx, params, (".csv",))
    write_lime_csv(path, task.features, display_values(task.features, task.rows.cells[row]), explanation,
                   params["index"])
    chart = reserve_beside(ctx, params, "LIME_Importance.png", (".png",))
    importance_bars(chart, explanation.conditions, explanation.weights,
                    f"LIME: row {params['index']} of {task.rows.name}, {task.target(class_index)}")
    ctx.log(f"row {params['index']}: output {explanation.prediction:.4g}, local model R² {explanation.score:.3f}, "
            f"{params['num_samples']} samples")
    for j in np.argsort(-np.abs(explanation.weights), kind="stable")[:5]:
        ctx.log(f"  {explanation.conditions[j]}: {explanation.weights[j]:+.5f}")
    ctx.log(f"wrote {path.name} and {chart.name}")
    return [path, chart]


def run_batch(ctx, params: dict) -> list[Path]:
    from nnc_web.engine.xai.lime_tabular import TabularLime, write_lime_batch_csv
    from nnc_web.engine.xai.tabular_plots import beeswarm, mean_abs_bars

    task, class_index = tabular_task(ctx, params)
    explainer = TabularLime(task.model, task.features, task.train.x, params["num_samples"])
    count = len(task.rows.x)
    weights = np.zeros((count, len(task.features)))
    for i in range(count):
        check_stop(ctx)
        weights[i] = explainer.explain(task.rows.x[i], class_index).weights
        ctx.progress(i + 1, count)
    path = output_path(ctx, params, (".csv",))
    write_lime_batch_csv(path, task.features, weights)
    names = [f.name for f in task.features]
    title = f"LIME over {count} rows of {task.rows.name}, {task.target(class_index)}"
    mean_chart = reserve_beside(ctx, params, "Mean_LIME.png", (".png",))
    mean_abs_bars(mean_chart, names, weights, title, "weight")
    swarm = reserve_beside(ctx, params, "Beeswarm_LIME.png", (".png",))
    beeswarm(swarm, names, weights, feature_colours(task), title, "weight")
    ctx.log(f"wrote {path.name}, {mean_chart.name} and {swarm.name}")
    return [path, mean_chart, swarm]


def num_samples_param() -> Param:
    return Param("num_samples", "int", 1000, min=10, max=100_000, label="Samples",
                 help="perturbed rows the local model is fitted on")


DESCRIPTION = ("the weight of each feature in a local linear model fitted to the model's output on "
               "perturbed copies of the row (quartile bins of the training data, NNC's settings). A "
               "categorical input one-hot encoded by the Tabular plugin is one feature ('colour' = red). "
               "Works for classifiers (the class score) and regressors (the value). \"Why Should I Trust "
               "You?\": Explaining the Predictions of Any Classifier (Ribeiro, Singh & Guestrin, 2016).")

SINGLE = register(Plugin(
    id="lime_tabular", kind="postprocess", group="XAI", title="LIME (tabular)",
    description="Explains one row of a table with LIME: " + DESCRIPTION,
    params=(model_param(), input_param(help_text="the rows to explain"), index_param(), class_param(),
            num_samples_param(), train_param(), output_param("lime_tabular.csv")),
    runner=run_single, completer=record_outputs, cross_check=lambda p: output_errors(p, ".csv"),
    uses_model=lambda p: True,
))

BATCH = register(Plugin(
    id="lime_tabular_batch", kind="postprocess", group="XAI", title="LIME (tabular batch)",
    description="Explains every row of a table with LIME: " + DESCRIPTION,
    params=(model_param(), input_param(help_text="the rows to explain"), class_param(), num_samples_param(),
            train_param(), output_param("lime_tabular_batch.csv")),
    runner=run_batch, completer=record_outputs, cross_check=lambda p: output_errors(p, ".csv"),
    uses_model=lambda p: True,
))
