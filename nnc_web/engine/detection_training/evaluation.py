"""Evaluation of a detector over a dataset: output_result.csv (the validation rows, then the predicted
boxes file and the error count at the threshold), metrics.json (COCO mAP, AP per class) and the
precision-recall curve per class as a Bokeh plot."""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.ops import box_iou

from nnc_web.engine.detection_training.data import DetectionData
from nnc_web.engine.detection_training.metrics import detection_metrics
from nnc_web.engine.detection_training.trainer import predict_boxes, truths_of
from nnc_web.engine.nnc_csv import parse_header_cell
from nnc_web.engine.reporting import Reporter

KEEP_SCORE = 0.05  # boxes kept in the predicted files: the UI's threshold slider works above it
PLOT = "pr_curve.bokeh.json"


def image_errors(pred: dict, truth: dict, threshold: float, iou: float = 0.5) -> int:
    """False positives + missed boxes at the score threshold (same class, IoU >= 0.5): worst first."""
    keep = pred["scores"] >= threshold
    boxes, labels = pred["boxes"][keep], pred["labels"][keep]
    matched, hits = set(), 0
    if len(boxes) and len(truth["boxes"]):
        ious = box_iou(boxes, truth["boxes"])
        for d in torch.argsort(-pred["scores"][keep]).tolist():
            for g in torch.argsort(-ious[d]).tolist():
                if ious[d, g] < iou:
                    break
                if g not in matched and truth["labels"][g] == labels[d]:
                    matched.add(g)
                    hits += 1
                    break
    return (len(boxes) - hits) + (len(truth["boxes"]) - hits)


def format_predictions(pred: dict) -> str:
    """`class cx cy w h score` lines, normalised (the dataset's box format plus the score)."""
    lines = []
    for (x0, y0, x1, y1), score, label in zip(pred["boxes"].tolist(), pred["scores"].tolist(),
                                              pred["labels"].tolist(), strict=True):
        if score >= KEEP_SCORE:
            lines.append(f"{label} {(x0 + x1) / 2:.6f} {(y0 + y1) / 2:.6f} {x1 - x0:.6f} {y1 - y0:.6f} {score:.6f}\n")
    return "".join(lines)


def write_output_result(folder: Path, data: DetectionData, predictions: list[dict], truths: list[dict],
                        threshold: float) -> None:
    cells = [parse_header_cell(c) for c in data.header]
    x = next(i for i, c in enumerate(cells) if c.name == "x")
    (folder / "predicted").mkdir(parents=True, exist_ok=True)
    with open(folder / "output_result.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(data.header + ["y':boxes", "#errors"])
        for index, (row, pred, truth) in enumerate(zip(data.rows, predictions, truths, strict=True)):
            row = list(row)
            row[x] = str((data.csv_path.parent / row[x]).resolve())
            (folder / "predicted" / f"{index}.txt").write_text(format_predictions(pred))
            writer.writerow(row + [f"./predicted/{index}.txt", image_errors(pred, truth, threshold)])


def pr_plot(curve: dict) -> dict:
    from bokeh.embed import json_item
    from bokeh.models import ColumnDataSource
    from bokeh.palettes import Category10_10
    from bokeh.plotting import figure

    plot = figure(title=f"Precision-recall per class (IoU {curve['iou']})", x_axis_label="recall",
                  y_axis_label="precision", x_range=(0, 1), y_range=(0, 1.02), width=520, height=420)
    for number, (name, precision) in enumerate(curve["precision"].items()):
        source = ColumnDataSource({"recall": curve["recall"], "precision": precision})
        plot.line("recall", "precision", source=source, legend_label=name, line_width=2,
                  color=Category10_10[number % 10])
    return json_item(plot)


def evaluate_detector(folder: Path, model, data: DetectionData, class_names: list[str], size: int,
                      threshold: float, device: torch.device, reporter: Reporter, batch_size: int = 16,
                      predict: Callable | None = None) -> dict:
    """`predict`: the model's own (model, data, size, device, reporter, batch_size) -> per-image boxes,
    scores, labels (DETR's post-processing); the CenterNet decoder by default."""
    reporter.log(f"evaluating on {len(data.images)} validation images")
    predictions = (predict or predict_boxes)(model.to(device), data, size, device, reporter, batch_size)
    truths = truths_of(data)
    write_output_result(folder, data, predictions, truths, threshold)
    metrics = detection_metrics(predictions, truths, class_names)
    (folder / PLOT).write_text(json.dumps({"item": pr_plot(metrics.pop("pr_curve")), "csv": "output_result.csv"}))
    metrics.update({"kind": "detection", "threshold": threshold, "class_names": class_names, "plot": PLOT})
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
    reporter.log(f"mAP@0.5 {metrics['map_50']:.4f}, mAP@[.5:.95] {metrics['map']:.4f} ({metrics['backend']}); "
                 + ", ".join(f"{c['class']} AP50 {c['ap_50']:.3f}" for c in metrics["per_class"]
                             if c["ap_50"] is not None))
    return metrics
