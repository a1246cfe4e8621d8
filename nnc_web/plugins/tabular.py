"""Pre-processing: tabular datasets from a CSV (NNC headers, or plain headers with chosen columns)."""
from __future__ import annotations

from pathlib import Path

from nnc_web.engine.reporting import UserError
from nnc_web.engine.tabular import TabularOptions, build_tabular_datasets
from nnc_web.plugins.common import outputs_of, register_datasets, split_errors, split_params
from nnc_web.plugins.registry import Param, Plugin, register


def _names(text: str | None) -> list[str] | None:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    return names or None


def run(ctx, params: dict) -> list:
    source = Path(params["source"])
    if not source.is_file() or source.suffix.lower() != ".csv":
        raise UserError("the source must be a .csv file")
    options = TabularOptions(target=params.get("target") or None, inputs=_names(params.get("inputs")),
                             categorical=_names(params.get("categorical")), task=params["task"],
                             missing=params["missing"])
    return build_tabular_datasets(source, ctx.path("build"), options, outputs_of(params), params["shuffle"],
                                  params["seed"], ctx)


PLUGIN = register(Plugin(
    id="tabular_csv",
    kind="preprocess",
    title="Tabular dataset (CSV)",
    description="Creates a tabular dataset from a CSV. A CSV with NNC headers (x__0, x__1, ..., y) is kept as "
                "it is. With plain headers, choose the target column, the inputs and the categorical inputs: "
                "numeric inputs become x__k:<column>, categorical ones one-hot x__k:<column>=<value>, a class "
                "target y:<column>;<class>;... holding the class index; types are detected and missing values "
                "reported, then dropped or filled (median, or a '(missing)' category).",
    params=(
        Param("source", "file", required=True, label="CSV file", help="a .csv file with a header row"),
        Param("target", "variable", None, label="Target column", help="the column to predict (plain headers)"),
        Param("inputs", "text", None, label="Input columns",
              help="comma-separated input columns (empty: every other column)"),
        Param("categorical", "text", None, label="Categorical inputs",
              help="comma-separated categorical inputs (empty: detected)"),
        Param("task", "choice", "auto", choices=("auto", "classification", "regression"), label="Task",
              help="auto: a numeric target with more than 20 values is regression"),
        Param("missing", "choice", "drop", choices=("drop", "fill"), label="Missing values",
              help="rows with missing inputs: drop them, or fill (median / '(missing)' category)"),
        *split_params(ratio1=80, ratio2=20, file2="validation"),
    ),
    runner=run,
    completer=register_datasets,
    cross_check=split_errors,
))
