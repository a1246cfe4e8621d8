"""Evaluate a trained classifier over a dataset into a run folder: output_result.csv, metrics.json."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from nnc_web.engine.reporting import Reporter
from nnc_web.engine.training.data import ClassificationData
from nnc_web.engine.training.evaluation import (
    classification_metrics,
    most_least_activating,
    predict,
    write_output_result,
)


def evaluate_into(folder: Path, model: torch.nn.Module, backbone_id: str, input_size: int, data: ClassificationData,
                  device: torch.device, reporter: Reporter, batch_size: int = 64) -> dict:
    reporter.log(f"evaluating on {len(data.labels)} validation images")
    scores = predict(model.to(device), data, backbone_id, input_size, device, reporter, batch_size)
    write_output_result(folder / "output_result.csv", data, scores)
    metrics = classification_metrics(data.labels, scores, data.class_names)
    metrics["activation_extremes"] = most_least_activating(data.labels, scores)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
    reporter.log(f"accuracy {metrics['accuracy']:.4f}, macro precision {metrics['precision_macro']:.4f}, "
                 f"macro recall {metrics['recall_macro']:.4f}, macro F1 {metrics['f1_macro']:.4f}")
    return metrics
