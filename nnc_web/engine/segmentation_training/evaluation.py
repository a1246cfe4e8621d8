"""Evaluation of a segmenter: predicted masks (PNG, class ids at the input size), output_result.csv
(the validation rows, the predicted mask path and the pixel error rate, for worst-first views) and
metrics.json with EasyMaker's metrics and the pixel confusion matrix."""
from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nnc_web.engine.nnc_csv import parse_header_cell
from nnc_web.engine.reporting import Reporter
from nnc_web.engine.segmentation import IGNORE
from nnc_web.engine.segmentation_training.data import SegmentationData
from nnc_web.engine.segmentation_training.metrics import confusion, segmentation_metrics
from nnc_web.engine.segmentation_training.trainer import predict_masks


def evaluate_segmenter(folder: Path, model, data: SegmentationData, class_names: list[str], size: int,
                       device: torch.device, reporter: Reporter, predict: Callable | None = None) -> dict:
    """`predict`: the model's own (model, data, size, device, reporter) -> (predicted ids, truth ids) per
    batch (SegFormer's upsampled logits); the LR-ASPP one by default."""
    reporter.log(f"evaluating on {len(data.images)} validation images")
    (folder / "predicted").mkdir(parents=True, exist_ok=True)
    matrix = np.zeros((len(class_names), len(class_names)), dtype=np.int64)
    errors = []
    index = 0
    for predicted, truth in (predict or predict_masks)(model.to(device), data, size, device, reporter):
        matrix += confusion(truth, predicted, len(class_names))
        for one, want in zip(predicted, truth, strict=True):
            Image.fromarray(one.astype(np.uint8), "L").save(folder / "predicted" / f"{index}.png")
            counted = want != IGNORE
            errors.append(float((one[counted] != want[counted]).mean()) if counted.any() else 0.0)
            index += 1
    x = next(i for i, c in enumerate(parse_header_cell(h) for h in data.header) if c.name == "x")
    with open(folder / "output_result.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(data.header + ["y':mask", "#pixel_error"])
        for number, (row, error) in enumerate(zip(data.rows, errors, strict=True)):
            row = list(row)
            row[x] = str((data.csv_path.parent / row[x]).resolve())
            writer.writerow(row + [f"./predicted/{number}.png", f"{error:.6f}"])
    metrics = {**segmentation_metrics(matrix, class_names), "kind": "segmentation", "input_size": size}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
    reporter.log(f"mean IoU {metrics['mean_iou']:.4f}, mean accuracy {metrics['mean_accuracy']:.4f}, overall "
                 f"accuracy {metrics['overall_accuracy']:.4f}")
    return metrics
