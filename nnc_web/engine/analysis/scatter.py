"""NNC's Scatter plot (§3.4) as an interactive Bokeh figure (json_item). The figure carries data only,
no script: the SPA reads `points.selected.indices` to follow taps and selections."""
from __future__ import annotations

import html
import math

import numpy as np
from bokeh.embed import json_item
from bokeh.models import ColumnDataSource, HoverTool, Span
from bokeh.palettes import Category10_10, Category20_20, Viridis256
from bokeh.plotting import figure
from bokeh.transform import factor_cmap, linear_cmap

from nnc_web.engine.analysis.table import Table, find_columns, shown_value
from nnc_web.engine.reporting import UserError

TOOLS = "pan,wheel_zoom,box_zoom,box_select,lasso_select,tap,reset,save"
MARKER_SIZE = 12
MAX_SIDE = 8192


def column_values(table: Table, name: str) -> tuple[np.ndarray, str]:
    """Float values of a column and the header cell used: the exact header match wins, else the first
    column of the variable (`y'` -> `y'__0`), so the plugin can log which one it took."""
    column = find_columns(table.header, name, table.name)[0]
    cell_name = table.header[column]
    values = np.empty(len(table.rows), dtype=np.float64)
    for index, row in enumerate(table.rows):
        try:
            values[index] = float(row[column])
        except ValueError as exc:
            raise UserError(f"{table.name} line {index + 2}, column {cell_name}: {shown_value(row[column])!r} is not a "
                            "number") from exc
    return values, cell_name


def _class_indices(values: np.ndarray, classes: list[str] | None) -> bool:
    """True when `values` are class indices of `classes` (at most 20 classes get their own hue)."""
    if not classes or len(classes) > 20:
        return False
    values = np.asarray(values, dtype=np.float64)
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values))
                and values.min() >= 0 and values.max() < len(classes))


def marker_size(count: int) -> float:
    """12 px up to 10k points, then smaller so 100k points do not merge into one blot."""
    return float(MARKER_SIZE) if count <= 10_000 else max(3.0, MARKER_SIZE * math.sqrt(10_000 / count))


def _template_text(text: str) -> str:
    """A column name inside the HTML template: escaped, and with Bokeh's @/$ markers neutralised so a
    header cell can never become a field reference."""
    return html.escape(text).replace("@", "&#64;").replace("$", "&#36;").replace("{", "&#123;")


def _tooltips(labels: list[tuple[str, str]], thumbs: bool) -> str | list[tuple[str, str]]:
    if not thumbs:
        return labels  # label/value pairs: Bokeh renders labels as text and escapes the values
    rows = "".join(f'<div><span style="font-weight:bold">{_template_text(label)}:</span> {field}</div>'
                   for label, field in labels)
    # @thumb is HTML-escaped by Bokeh (no {safe}), so a cell cannot break out of the attribute.
    return f'<div><img src="@thumb" alt="" style="max-width:128px;max-height:128px">{rows}</div>'


def scatter_item(x: np.ndarray, y: np.ndarray, c: np.ndarray | None, *, x_label: str, y_label: str,
                 c_label: str | None = None, width: int = 1920, height: int = 1080, rows: list[int],
                 thumbs: list[str] | None = None, hover: dict[str, list[str]] | None = None,
                 c_classes: list[str] | None = None) -> dict:
    """The scatter figure as `bokeh.embed.json_item`; the data source is named "points". With
    `c_classes` (a label column's class names) the colour is one hue per class with a legend."""
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise UserError(f"width and height must be between 1 and {MAX_SIDE}")
    count = len(x)
    columns = {"x": np.asarray(x, dtype=np.float32), "y": np.asarray(y, dtype=np.float32),
               "row": np.asarray(rows, dtype=np.int32)}
    categorical = c is not None and _class_indices(c, c_classes)
    if c is not None:
        columns["c"] = np.asarray(c, dtype=np.float32)
    if categorical:
        columns["c_class"] = [c_classes[int(v)] for v in c]
    if thumbs is not None:
        columns["thumb"] = list(thumbs)
    labels = [(x_label, "@x"), (y_label, "@y")] + ([(c_label or "c", "@c_class" if categorical else "@c")]
                                                   if c is not None else [])
    labels.append(("row", "@row"))
    # Hover columns get neutral field names: a header like `x:image` or `a}b` is not a safe field name.
    for number, (name, values) in enumerate((hover or {}).items()):
        columns[f"h{number}"] = list(values)
        labels.append((name, f"@h{number}"))
    lengths = {key: len(value) for key, value in columns.items()}
    if set(lengths.values()) != {count}:
        raise ValueError(f"every column needs {count} values: {lengths}")

    plot = figure(width=width, height=height, sizing_mode="scale_width", output_backend="webgl", tools=TOOLS,
                  active_scroll="wheel_zoom", background_fill_color="white", x_axis_label=x_label,
                  y_axis_label=y_label, min_border=40)
    source = ColumnDataSource(data=columns, name="points")
    legend = {}
    if categorical:
        palette = Category10_10 if len(c_classes) <= 10 else Category20_20
        colour = factor_cmap("c_class", palette[:max(3, len(c_classes))], list(c_classes))
        legend = {"legend_field": "c_class"}
    elif c is not None:
        finite = columns["c"][np.isfinite(columns["c"])]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        colour = linear_cmap("c", Viridis256, low, high if high > low else low + 1.0)
    else:
        colour = "#1f77b4"
    renderer = plot.scatter("x", "y", source=source, size=marker_size(count), fill_color=colour,
                            line_color=None, fill_alpha=0.8, **legend)
    if categorical:
        plot.add_layout(plot.legend[0], "right")
        plot.legend.title = c_label or "c"
    elif c is not None:
        plot.add_layout(renderer.construct_color_bar(title=c_label or "c"), "right")
    plot.add_tools(HoverTool(renderers=[renderer], tooltips=_tooltips(labels, thumbs is not None)))
    for grid in (plot.xgrid, plot.ygrid):
        grid.grid_line_color = "#c0c0c0"
    for dimension in ("width", "height"):
        plot.add_layout(Span(location=0, dimension=dimension, line_color="black", line_width=1))
    plot.xaxis.axis_label_text_font_size = plot.yaxis.axis_label_text_font_size = "18pt"
    plot.xaxis.major_label_text_font_size = plot.yaxis.major_label_text_font_size = "12pt"
    return json_item(plot)
