"""EasyMaker's segmentation metrics (those of Hugging Face evaluate's mean_iou) from a pixel confusion
matrix: pixels marked 255 are ignored; a class with no pixel in truth nor prediction is left out of
the means (NaN per category, shown as null)."""
from __future__ import annotations

import math

import numpy as np

from nnc_web.engine.segmentation import IGNORE


def confusion(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """(true class, predicted class) pixel counts, ignored pixels left out."""
    keep = truth != IGNORE
    index = truth[keep].astype(np.int64) * num_classes + predicted[keep].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _nan_none(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values]


def segmentation_metrics(matrix: np.ndarray, class_names: list[str]) -> dict:
    diagonal = np.diag(matrix).astype(float)
    truth, predicted = matrix.sum(axis=1).astype(float), matrix.sum(axis=0).astype(float)
    union = truth + predicted - diagonal
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, diagonal / union, np.nan)
        accuracy = np.where(truth > 0, diagonal / truth, np.nan)
    total = matrix.sum()
    return {"mean_iou": float(np.nanmean(iou)) if not np.isnan(iou).all() else 0.0,
            "mean_accuracy": float(np.nanmean(accuracy)) if not np.isnan(accuracy).all() else 0.0,
            "overall_accuracy": float(diagonal.sum() / total) if total else 0.0,
            "per_category_iou": _nan_none(iou), "per_category_accuracy": _nan_none(accuracy),
            "confusion_matrix": matrix.tolist(), "class_names": class_names}
