"""Evaluation of a zero-shot classifier over a dataset, as any classifier's (`training.evaluation`):
output_result.csv (the source columns, then y'__0 ... y'__K-1 in the order of the query classes) and,
when the rows' labels name query classes, metrics.json with accuracy and the confusion matrix.

Labels are matched by name (case, spaces, `_` and `-` ignored: `golden_retriever` is `Golden
Retriever`), and the y column of output_result.csv is rewritten in the query's class order, so its y
and y' agree for the evaluation tab, the confusion matrix and post-processing."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from nnc_web.engine.clip.prompts import class_key
from nnc_web.engine.nnc_csv import HeaderCell, format_header_cell, parse_header_cell, read_table
from nnc_web.engine.reporting import Reporter, UserError
from nnc_web.engine.safe_paths import safe_join
from nnc_web.engine.training.data import ClassificationData, load_classification_csv
from nnc_web.engine.training.evaluation import (
    classification_metrics,
    most_least_activating,
    predict,
    write_output_result,
)


def load_images_csv(csv_path: Path) -> ClassificationData:
    """A dataset with an image column x and, optionally, labels y (zero-shot needs no labels)."""
    header, rows = read_table(csv_path)
    names = [parse_header_cell(c).name for c in header]
    if "y" in names:
        return load_classification_csv(csv_path)
    if "x" not in names:
        raise UserError(f"{csv_path.name} has no image column x")
    x = names.index("x")
    images = []
    for number, row in enumerate(rows, start=2):
        try:
            images.append(safe_join(csv_path.parent, row[x]))
        except (IndexError, UserError) as exc:
            raise UserError(f"{csv_path.name} line {number}: {exc}") from exc
    return ClassificationData(csv_path, header, rows, images, [], [])


def align_labels(data: ClassificationData, classes: list[str]) -> tuple[ClassificationData | None, str]:
    """The data with y holding query-class indices, or None and why there are no metrics."""
    if not data.labels:
        return None, "the validation dataset has no labels (y): scores only, no metrics"
    query = {class_key(name): index for index, name in enumerate(classes)}
    used = sorted(set(data.labels))
    named = {label: data.class_names[label] if label < len(data.class_names) else str(label) for label in used}
    missing = [named[label] for label in used if class_key(named[label]) not in query]
    if missing:
        return None, (f"no metrics: the validation classes {', '.join(missing[:10])}"
                      f"{' ...' if len(missing) > 10 else ''} are not among the query classes")
    mapping = {label: query[class_key(named[label])] for label in used}
    cells = [parse_header_cell(c) for c in data.header]
    y = [c.name for c in cells].index("y")
    header = list(data.header)
    header[y] = format_header_cell(HeaderCell(cells[y].name, cells[y].index, cells[y].label or "label",
                                              tuple(classes)))
    rows = [list(row) for row in data.rows]
    for row, label in zip(rows, data.labels, strict=True):
        row[y] = str(mapping[label])
    labels = [mapping[label] for label in data.labels]
    return ClassificationData(data.csv_path, header, rows, data.images, labels, list(classes)), ""


def evaluate_zero_shot(folder: Path, model: torch.nn.Module, manifest: dict, valid_csv: Path,
                       device: torch.device, reporter: Reporter, batch_size: int = 64) -> dict:
    """Score the validation dataset into a run folder: output_result.csv, metrics.json."""
    classes = list(manifest["class_names"])
    data = load_images_csv(valid_csv)
    aligned, note = align_labels(data, classes)
    reporter.log(f"evaluating on {len(data.images)} validation images, {len(classes)} classes")
    scoring = data if data.labels else replace(data, labels=[0] * len(data.images))  # the loader yields pairs
    scores = predict(model.to(device), scoring, manifest["backbone"], int(manifest["input_size"]), device,
                     reporter, batch_size)
    if not len(data.images):
        scores = np.zeros((0, len(classes)), dtype=np.float32)
    write_output_result(folder / "output_result.csv", aligned or data, scores)
    if aligned is None:
        reporter.log(note)
        metrics: dict = {"kind": "zero_shot", "class_names": classes, "note": note}
    else:
        metrics = {"kind": "zero_shot", **classification_metrics(aligned.labels, scores, classes),
                   "activation_extremes": most_least_activating(aligned.labels, scores)}
        reporter.log(f"accuracy {metrics['accuracy']:.4f}, macro precision {metrics['precision_macro']:.4f}, "
                     f"macro recall {metrics['recall_macro']:.4f}, macro F1 {metrics['f1_macro']:.4f}")
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics
