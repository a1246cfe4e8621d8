"""Learning curves as Bokeh figures (embedded in the SPA with BokehJS, updated live there)."""
from __future__ import annotations

from bokeh.embed import json_item
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

SERIES = (("train_loss", "train loss", "solid"), ("train_error", "train error", "dashed"),
          ("valid_error", "valid error", "solid"))


def curves_item(runs: list) -> dict:
    """One line per run and series; each run's data sits in a source named `run-<id>` with columns
    epoch, train_loss, train_error, valid_error, so the browser can stream new epochs into it."""
    plot = figure(height=300, sizing_mode="stretch_width", x_axis_label="epoch", y_axis_label="loss / error",
                  tools="pan,wheel_zoom,box_zoom,reset,save", name="learning-curves")
    for index, run in enumerate(runs):
        history = run.history or []
        source = ColumnDataSource({"epoch": [h["epoch"] for h in history],
                                   **{key: [h[key] for h in history] for key, _, _ in SERIES}}, name=f"run-{run.pk}")
        colour = Category10_10[index % 10]
        for offset, (key, label, dash) in enumerate(SERIES):
            shade = colour if len(runs) > 1 else Category10_10[offset]
            plot.line("epoch", key, source=source, legend_label=f"run {run.pk} {label}" if len(runs) > 1 else label,
                      line_color=shade, line_dash=dash, line_width=2)
            plot.scatter("epoch", key, source=source, color=shade, size=5)
    plot.add_tools(HoverTool(tooltips=[("epoch", "@epoch"), ("train loss", "@train_loss{0.0000}"),
                                       ("train error", "@train_error{0.000}"), ("valid error", "@valid_error{0.000}")]))
    plot.legend.location = "top_right"
    plot.legend.click_policy = "hide"
    return json_item(plot)
