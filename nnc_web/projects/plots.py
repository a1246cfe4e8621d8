"""Learning curves as Bokeh figures (embedded in the SPA with BokehJS, updated live there)."""
from __future__ import annotations

import json

from bokeh.embed import json_item
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from nnc_web.plugins.registry import PLUGINS

# What a series is called on the figure; a run draws the numbers its history records (a classifier its
# loss and errors, a detector its loss parts and mAP, a segmenter its mean IoU), so a new trainer's curves
# show without a change here (its keys are then their own labels).
LABELS = {"train_loss": "train loss", "train_error": "train error", "valid_error": "valid error",
          "heat_loss": "heat-map loss", "size_loss": "size loss", "offset_loss": "offset loss",
          "loss_ce": "class loss", "loss_bbox": "box L1 loss", "loss_giou": "GIoU loss",
          "valid_map50": "valid mAP@0.5", "valid_map": "valid mAP@[.5:.95]",
          "valid_mean_iou": "valid mean IoU", "valid_overall_accuracy": "valid pixel accuracy"}
CLASSIFIER = ("train_loss", "train_error", "valid_error")
NOT_CURVES = {"epoch", "seconds"}


def series_of(run) -> tuple[str, ...]:
    """The series a run draws: every number its history records (in first-seen order, so a key that
    appears only in later epochs still gets a line), else, before its first epoch, those its training
    plugin declares it will record (so the live stream has a line to grow)."""
    keys: dict[str, None] = {}
    for record in run.history or []:
        keys.update({k: None for k, v in record.items()
                     if k not in NOT_CURVES and isinstance(v, int | float) and not isinstance(v, bool)})
    if keys:
        return tuple(keys)
    plugin = PLUGINS.get(run.plugin_id)
    return (plugin.curves if plugin is not None else None) or CLASSIFIER


def curves_item(runs: list) -> dict:
    """One line per run and series; each run's data sits in a source named `run-<id>` with columns
    epoch and its series (its `tags`: ['{"series": [{"key", "label"}, ...]}'], JSON), so the browser can stream
    new epochs into it."""
    plot = figure(height=300, sizing_mode="stretch_width", x_axis_label="epoch", y_axis_label="loss / error",
                  tools="pan,wheel_zoom,box_zoom,reset,save", name="learning-curves")
    tooltips = {}
    for index, run in enumerate(runs):
        history = run.history or []
        keys = series_of(run)
        series = [{"key": key, "label": LABELS.get(key, key.replace("_", " "))} for key in keys]
        source = ColumnDataSource({"epoch": [h["epoch"] for h in history],
                                   **{key: [h.get(key) for h in history] for key in keys}},
                                  name=f"run-{run.pk}", tags=[json.dumps({"series": series})])  # a string: Bokeh
        # would turn a dict into a JavaScript Map
        colour = Category10_10[index % 10]
        for offset, item in enumerate(series):
            shade = colour if len(runs) > 1 else Category10_10[offset % 10]
            label = f"run {run.pk} {item['label']}" if len(runs) > 1 else item["label"]
            plot.line("epoch", item["key"], source=source, legend_label=label, line_color=shade, line_width=2)
            plot.scatter("epoch", item["key"], source=source, color=shade, size=5)
            tooltips[item["key"]] = item["label"]
    plot.add_tools(HoverTool(tooltips=[("epoch", "@epoch"), *((label, f"@{key}{{0.0000}}")
                                                              for key, label in tooltips.items())]))
    plot.legend.location = "top_right"
    plot.legend.click_policy = "hide"
    return json_item(plot)
