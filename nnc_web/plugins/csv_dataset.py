"""Internal job: *Make a dataset from this CSV* (a result table's rows and images as a new dataset)."""
from __future__ import annotations

from nnc_web.engine.analysis.table import load_table
from nnc_web.plugins.common import register_datasets
from nnc_web.plugins.postprocess import max_pixels, resolver_for
from nnc_web.plugins.registry import Param, Plugin, dataset_name_errors, register


def run(ctx, params: dict) -> list:
    from nnc_web.engine.analysis.csv_dataset import build_csv_dataset

    table = load_table(params["input"])
    return [build_csv_dataset(table, resolver_for(params, params["input"]), params["name"], ctx.workdir, ctx,
                              max_pixels())]


PLUGIN = register(Plugin(
    id="csv_dataset", kind="preprocess", title="Dataset from a result CSV", hidden=True,
    description="Turns a CSV of a run or dataset (saved rows, a plugin's output) into a new dataset, copying "
                "the images its rows name.",
    params=(
        Param("input", "csv", required=True, help="the CSV"),
        Param("name", "text", required=True, help="the new dataset's name"),
    ),
    runner=run, completer=register_datasets, cross_check=lambda p: dataset_name_errors(p, "name"),
))
