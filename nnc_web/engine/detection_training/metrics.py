"""COCO detection metrics: mAP@0.5, mAP@[.5:.95], AP per class and the precision-recall curve per class.

torchmetrics' MeanAveragePrecision computes them when one of its COCO backends (pycocotools or
faster-coco-eval) is installed. Without one, `coco_map` follows COCOeval's definition step for step
(per image and class the 100 best detections, greedy matching by score at each IoU threshold, the
101-point interpolated precision), so the numbers are the same; tests check it on hand-made cases."""
from __future__ import annotations

import importlib.util

import numpy as np
import torch
from torchvision.ops import box_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 100

Prediction = dict  # {"boxes": (n, 4) xyxy, "scores": (n,), "labels": (n,)}
Truth = dict  # {"boxes": (m, 4) xyxy, "labels": (m,)}


def coco_backend() -> str | None:
    for name, module in (("faster_coco_eval", "faster_coco_eval"), ("pycocotools", "pycocotools")):
        if importlib.util.find_spec(module) is not None:
            return name
    return None


def detection_metrics(predictions: list[Prediction], truths: list[Truth], class_names: list[str]) -> dict:
    """{"map", "map_50", "map_75", "per_class": [{"class", "ap", "ap_50", "boxes"}], "pr_curve": {...}}."""
    backend = coco_backend()
    precision = _torchmetrics_precision(predictions, truths, backend) if backend else coco_precision(
        predictions, truths, len(class_names))
    # precision: (T, R, K) with -1 where a class has no true box
    counts = np.bincount(np.concatenate([t["labels"].numpy().astype(int) for t in truths] or [np.zeros(0, int)]),
                         minlength=len(class_names))
    per_class = []
    for k, name in enumerate(class_names):
        curve = precision[:, :, k] if k < precision.shape[2] else np.full((len(IOU_THRESHOLDS), 101), -1.0)
        valid = curve[0, 0] > -1
        per_class.append({"class": name, "boxes": int(counts[k]),
                          "ap": float(curve.mean()) if valid else None,
                          "ap_50": float(curve[0].mean()) if valid else None})
    scored = [c for c in per_class if c["ap"] is not None]

    def mean(key: str) -> float:
        return float(np.mean([c[key] for c in scored])) if scored else 0.0

    ap75 = [precision[5, :, k].mean() for k in range(precision.shape[2]) if precision[5, 0, k] > -1]
    return {"map": mean("ap"), "map_50": mean("ap_50"), "map_75": float(np.mean(ap75)) if ap75 else 0.0,
            "per_class": per_class, "backend": backend or "builtin COCOeval definition",
            "pr_curve": {"recall": RECALL_POINTS.tolist(), "iou": 0.5,
                         "precision": {name: np.clip(precision[0, :, k], 0, None).tolist()
                                       for k, name in enumerate(class_names) if k < precision.shape[2]}}}


def _torchmetrics_precision(predictions: list[Prediction], truths: list[Truth], backend: str) -> np.ndarray:
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True, extended_summary=True,
                                  backend=backend)
    metric.update([{k: p[k].float() if k != "labels" else p[k].long() for k in ("boxes", "scores", "labels")}
                   for p in predictions],
                  [{"boxes": t["boxes"].float(), "labels": t["labels"].long()} for t in truths])
    result = metric.compute()
    precision = result["precision"].numpy()  # (T, R, K, area, max detections), K over the classes seen
    classes = result["classes"].reshape(-1).tolist()
    size = max(classes, default=-1) + 1
    full = np.full((len(IOU_THRESHOLDS), len(RECALL_POINTS), size), -1.0)
    for position, cls in enumerate(classes):
        full[:, :, cls] = precision[:, :, position, 0, -1]
    return full


def _match(pred_boxes: torch.Tensor, true_boxes: torch.Tensor, threshold: float) -> np.ndarray:
    """COCOeval's greedy matching: each detection, best first, takes the unmatched truth with the
    highest IoU at or above the threshold."""
    hits = np.zeros(len(pred_boxes), dtype=bool)
    if not len(pred_boxes) or not len(true_boxes):
        return hits
    ious = box_iou(pred_boxes.float(), true_boxes.float()).numpy()
    taken = np.zeros(len(true_boxes), dtype=bool)
    for d in range(len(pred_boxes)):
        best, chosen = min(threshold, 1 - 1e-10), -1
        for g in range(len(true_boxes)):
            if not taken[g] and ious[d, g] >= best:
                best, chosen = ious[d, g], g
        if chosen >= 0:
            taken[chosen], hits[d] = True, True
    return hits


def coco_precision(predictions: list[Prediction], truths: list[Truth], num_classes: int) -> np.ndarray:
    """(T, R, K) interpolated precision at each IoU threshold and recall point; -1: no true box."""
    precision = np.full((len(IOU_THRESHOLDS), len(RECALL_POINTS), num_classes), -1.0)
    for k in range(num_classes):
        per_threshold = [([], []) for _ in IOU_THRESHOLDS]
        positives = 0
        for pred, truth in zip(predictions, truths, strict=True):
            true_boxes = truth["boxes"][truth["labels"] == k]
            positives += len(true_boxes)
            chosen = pred["labels"] == k
            scores = pred["scores"][chosen]
            order = torch.argsort(-scores, stable=True)[:MAX_DETECTIONS]
            boxes, scores = pred["boxes"][chosen][order], scores[order]
            for t, threshold in enumerate(IOU_THRESHOLDS):
                per_threshold[t][0].append(scores.numpy())
                per_threshold[t][1].append(_match(boxes, true_boxes, threshold))
        if positives == 0:
            continue
        for t, (scores, hits) in enumerate(per_threshold):
            scores, hits = np.concatenate(scores), np.concatenate(hits)
            order = np.argsort(-scores, kind="mergesort")
            tp, fp = np.cumsum(hits[order]), np.cumsum(~hits[order])
            recall = tp / positives
            prec = tp / np.maximum(tp + fp, np.finfo(float).eps)
            prec = np.maximum.accumulate(prec[::-1])[::-1] if len(prec) else prec  # the envelope
            where = np.searchsorted(recall, RECALL_POINTS, side="left")
            precision[t, :, k] = [prec[i] if i < len(prec) else 0.0 for i in where]
    return precision
