"""Post-processing: Scatter Plot (NNC's Visualization plugin) - two columns against each other,
coloured by a third, as an interactive Bokeh plot (WebGL) that the browser embeds through json_item."""
from __future__ import annotations

import json

from nnc_web.engine.analysis.table import is_image_cell, load_table
from nnc_web.engine.nnc_csv import parse_header_cell
from nnc_web.plugins.postprocess import (
    display_cell,
    image_url,
    input_param,
    output_errors,
    output_param,
    output_path,
    record_outputs,
    user_root,
)
from nnc_web.plugins.registry import Param, Plugin, register

DETAIL_LIMIT = 20_000  # above this many points the hover shows coordinates only (keeps the payload small)
HOVER_COLUMNS = 4


def _csv_name(params: dict) -> str | None:
    """The input's name among the run's CSVs, so a selection can be saved from the plot."""
    workspace = params["_workspace"]
    return next((name for name, path in workspace.csvs.items() if path == params["input"]), None)


def run(ctx, params: dict) -> list:
    from nnc_web.engine.analysis.scatter import column_values, scatter_item

    table = load_table(params["input"])
    series = {}
    for axis in ("x", "y", "c"):
        if params.get(axis):
            series[axis] = column_values(table, params[axis])
            if series[axis][1] != params[axis]:
                ctx.log(f"{axis}: using column {series[axis][1]}")
    rows = list(range(len(table.rows)))
    thumbs, hover = None, None
    workspace = params["_workspace"]
    if len(rows) <= DETAIL_LIMIT:
        image_at = next((i for i, c in enumerate(table.rows[0] if table.rows else []) if is_image_cell(c)), None)
        root = user_root(workspace)
        if image_at is not None and workspace.url_base:
            thumbs = [image_url(workspace.url_base, display_cell(r[image_at], root), True) for r in table.rows]
        shown = [i for i in range(len(table.header)) if i != image_at][:HOVER_COLUMNS]
        hover = {table.header[i].split(":")[0]: [display_cell(r[i], root) if i < len(r) else "" for r in table.rows]
                 for i in shown}
    # Axis titles name the columns used, without their labels and class lists (`y:label;0;1` -> `y`).
    x, x_label = series["x"][0], series["x"][1].split(":")[0]
    y, y_label = series["y"][0], series["y"][1].split(":")[0]
    c, c_label = (series["c"][0], series["c"][1].split(":")[0]) if "c" in series else (None, None)
    classes = list(parse_header_cell(series["c"][1]).classes) if "c" in series else []
    item = scatter_item(x, y, c, x_label=x_label, y_label=y_label, c_label=c_label, width=params["width"],
                        height=params["height"], rows=rows, thumbs=thumbs, hover=hover, c_classes=classes or None)
    path = output_path(ctx, params, (".bokeh.json",))
    path.write_text(json.dumps({"item": item, "csv": _csv_name(params)}))
    ctx.log(f"{len(rows)} points plotted ({x_label} against {y_label}" + (f", colour {c_label})" if c_label else ")"))
    return [path]


PLUGIN = register(Plugin(
    id="scatter_plot", kind="postprocess", group="Visualization", title="Scatter Plot",
    description="Plots column y against column x, coloured by c, as an interactive plot: hover a point for "
                "its row (and thumbnail), click to open the row, select with the box or lasso and save the "
                "selection as a CSV. A variable name picks its first column (y' -> y'__0).",
    params=(
        input_param(),
        Param("x", "variable", "y'", required=True, help="the horizontal axis' column"),
        Param("y", "variable", "y", required=True, help="the vertical axis' column"),
        Param("c", "variable", None, help="optional: the colour's column"),
        Param("width", "int", 1920, min=100, max=8000, help="plot width in pixels"),
        Param("height", "int", 1080, min=100, max=8000, help="plot height in pixels"),
        output_param("scatter_plot.bokeh.json"),
    ),
    runner=run, completer=record_outputs, cross_check=lambda p: output_errors(p, ".bokeh.json"),
))
