"""Post-processing: Cross Tabulation (NNC's Utils plugin) - a contingency table of two variables,
e.g. the label against the prediction, or against "correct / incorrect"."""
from __future__ import annotations

from nnc_web.engine.analysis.table import load_table
from nnc_web.plugins.postprocess import input_param, output_errors, output_param, output_path, record_outputs
from nnc_web.plugins.registry import Param, Plugin, register


def run(ctx, params: dict) -> list:
    from nnc_web.engine.analysis.crosstab import cross_tabulation, write_cross_tabulation

    table = load_table(params["input"])
    rows = cross_tabulation(table, params["variable1"], params["variable2"], params.get("variable2_eval") or None,
                            params["output_in_ratio"])
    path = output_path(ctx, params, (".csv",))
    write_cross_tabulation(path, rows)
    ctx.log(f"{len(rows) - 4} rows x {len(rows[3]) - 1} columns written to {path.name}")
    return [path]


PLUGIN = register(Plugin(
    id="cross_tabulation", kind="postprocess", group="Utils", title="Cross Tabulation",
    description="Counts the rows for every pair of values of two variables (a contingency table): with "
                "variable1 = y and variable2 = y' it is the confusion matrix; with variable2_eval the "
                "columns become Correct / Incorrect (variable2 compared with variable2_eval), i.e. the "
                "accuracy per class. A vector variable (y'__0..) counts as its argmax, a probability as "
                ">= 0.5. output_in_ratio divides every row by its total.",
    params=(
        input_param(),
        Param("variable1", "variable", "y", required=True, help="the rows' variable"),
        Param("variable2", "variable", "y'", required=True, help="the columns' variable"),
        Param("variable2_eval", "variable", None,
              help="optional: compare variable2 with this one; columns become Correct / Incorrect"),
        Param("output_in_ratio", "bool", False, help="divide each row by its total (rows sum to 1)"),
        output_param("cross_tabulation.csv"),
    ),
    runner=run, completer=record_outputs, cross_check=lambda p: output_errors(p, ".csv"),
))
