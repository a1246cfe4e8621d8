"""Post-processing (XAI): Kernel SHAP on a tabular model, for one row (`shap_tabular`: NNC's CSV and a
force plot) or every row of a CSV (`shap_tabular_batch`: a Shapley value per feature and row, plus
mean |value| bars and a beeswarm)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnc_web.engine.reporting import check_stop
from nnc_web.plugins.lime_tabular import (
    class_param,
    feature_colours,
    index_param,
    model_param,
    tabular_task,
    train_param,
)
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
    from nnc_web.engine.xai.shap_tabular import TabularKernelShap
    from nnc_web.engine.xai.tabular import TabularTask


def _explainer(ctx, params: dict, task: TabularTask) -> TabularKernelShap:
    from nnc_web.engine.xai.shap_tabular import TabularKernelShap, check_memory, exhaustive, sample_budget

    count, width = len(task.features), task.train.x.shape[1]
    needed = check_memory(len(task.train.x), width, count, params.get("memory_limit"))
    plan = (f"every one of the {2 ** count} coalitions (exact Shapley values)" if exhaustive(count)
            else f"{sample_budget(count)} sampled coalitions")
    ctx.log(f"Kernel SHAP over {len(task.train.x)} background rows: {plan}; NNC's memory estimate {needed:.2f} GiB")
    return TabularKernelShap(task.model, task.features, task.train.x, alpha=params["alpha"])


def run_single(ctx, params: dict) -> list[Path]:
    from nnc_web.engine.analysis.outputs import reserve_output
    from nnc_web.engine.xai.shap_tabular import write_shap_csv
    from nnc_web.engine.xai.tabular import display_values, pick_row
    from nnc_web.engine.xai.tabular_plots import force_plot

    task, class_index = tabular_task(ctx, params)
    row = pick_row(task.rows, params["index"])
    explanation = _explainer(ctx, params, task).explain(task.rows.x[row], class_index)
    values = display_values(task.features, task.rows.cells[row])
    path = output_path(ctx, params, (".csv",))
    folder = path.parent / path.stem  # NNC: <output stem>/shap_tabular.png
    folder.mkdir(exist_ok=True)
    plot = reserve_output(folder, "shap_tabular.png", (".png",))
    write_shap_csv(path, task.features, values, explanation, params["index"], f"{folder.name}/{plot.name}")
    labels = [f"{f.label} = {v}" for f, v in zip(task.features, values, strict=True)]
    force_plot(plot, labels, explanation.values, explanation.base, explanation.prediction,
               f"Kernel SHAP: row {params['index']} of {task.rows.name}, {task.target(class_index)}")
    ctx.log(f"row {params['index']}: f(x) {explanation.prediction:.6g}, base value {explanation.base:.6g}, "
            f"sum of the values {explanation.values.sum():.6g}")
    for j in np.argsort(-np.abs(explanation.values), kind="stable")[:5]:
        ctx.log(f"  {labels[j]}: {explanation.values[j]:+.5f}")
    ctx.log(f"wrote {path.name} and {folder.name}/{plot.name}")
    return [path, plot]


def run_batch(ctx, params: dict) -> list[Path]:
    from nnc_web.engine.xai.shap_tabular import write_shap_batch_csv
    from nnc_web.engine.xai.tabular_plots import beeswarm, mean_abs_bars

    task, class_index = tabular_task(ctx, params)
    explainer = _explainer(ctx, params, task)
    count = len(task.rows.x)
    values = np.zeros((count, len(task.features)))
    for i in range(count):
        check_stop(ctx)
        values[i] = explainer.explain(task.rows.x[i], class_index).values
        ctx.progress(i + 1, count)
    path = output_path(ctx, params, (".csv",))
    write_shap_batch_csv(path, task.features, values)
    names = [f.name for f in task.features]
    title = f"Kernel SHAP over {count} rows of {task.rows.name}, {task.target(class_index)}"
    mean_chart = reserve_beside(ctx, params, "Mean_SHAP.png", (".png",))
    mean_abs_bars(mean_chart, names, values, title, "SHAP value")
    swarm = reserve_beside(ctx, params, "Beeswarm_SHAP.png", (".png",))
    beeswarm(swarm, names, values, feature_colours(task), title, "SHAP value")
    ctx.log(f"base value {float(explainer.base[class_index]):.6g}; wrote {path.name}, {mean_chart.name} "
            f"and {swarm.name}")
    return [path, mean_chart, swarm]


def alpha_param() -> Param:
    return Param("alpha", "float", 0.0, min=0.0, max=1e6, label="L2 penalty (alpha)",
                 help="L2 penalty of the weighted regression (0: plain Kernel SHAP)")


def memory_param() -> Param:
    return Param("memory_limit", "float", None, min=0.001, max=1e6, label="Memory limit (GiB)",
                 help="GiB; refuse when NNC's estimate is above it (empty: 2/3 of the free memory)")


DESCRIPTION = ("Shapley values of each feature by Kernel SHAP, the whole training CSV as the background "
               "(base value = the mean output over it); exact (every coalition) up to 11 features, else "
               "NNC's 2M + 2048 sampled coalitions. A categorical input one-hot encoded by the Tabular "
               "plugin is one feature. A Unified Approach to Interpreting Model Predictions (Lundberg & "
               "Lee, 2017).")

SINGLE = register(Plugin(
    id="shap_tabular", kind="postprocess", group="XAI", title="SHAP (tabular)",
    description="Explains one row of a table with a force plot. " + DESCRIPTION,
    params=(model_param(), input_param(help_text="the rows to explain"), train_param(), index_param(),
            alpha_param(), class_param(), output_param("shap_tabular.csv"), memory_param()),
    runner=run_single, completer=record_outputs, cross_check=lambda p: output_errors(p, ".csv"),
    uses_model=lambda p: True,
))

BATCH = register(Plugin(
    id="shap_tabular_batch", kind="postprocess", group="XAI", title="SHAP (tabular batch)",
    description="Explains every row of a table. " + DESCRIPTION,
    params=(model_param(), input_param(help_text="the rows to explain"), train_param(), alpha_param(),
            class_param(), output_param("shap_tabular_batch.csv"), memory_param()),
    runner=run_batch, completer=record_outputs, cross_check=lambda p: output_errors(p, ".csv"),
    uses_model=lambda p: True,
))
