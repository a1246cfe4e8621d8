"""Score a dataset with a fitted anomaly model and write what the evaluation tab shows:
maps/<row>.npy (blurred anomaly map, float16), heatmaps/<row>.png (overlay), output_result.csv
(source columns + y' score + x' map path + heatmap path), most_anomalous.png and the metrics."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from nnc_web.engine.anomaly.data import AnomalyData
from nnc_web.engine.anomaly.features import load_rgb
from nnc_web.engine.anomaly.maps import heatmap_overlay, tile
from nnc_web.engine.anomaly.model import AnomalyModel
from nnc_web.engine.reporting import Reporter, check_stop

HISTOGRAM_BINS = 30
MOST_ANOMALOUS = 16
PIXEL_AUROC_MAX_PIXELS = 16_000_000  # beyond this, pixel AUROC uses an even grid of pixels


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold with the best F1 (anomalous = score >= threshold)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def at_threshold(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    predicted = scores >= threshold
    tp = int((predicted & (labels == 1)).sum())
    fp = int((predicted & (labels == 0)).sum())
    fn = int((~predicted & (labels == 1)).sum())
    tn = int((~predicted & (labels == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision, "recall": recall, "f1": f1}


def score_histogram(scores: np.ndarray, labels: np.ndarray | None) -> dict:
    low, high = float(scores.min()), float(scores.max())
    edges = np.linspace(low, high if high > low else low + 1.0, HISTOGRAM_BINS + 1)
    groups = {"all": scores} if labels is None else {"0": scores[labels == 0], "1": scores[labels == 1]}
    return {"edges": edges.tolist(), "counts": {k: np.histogram(v, edges)[0].tolist() for k, v in groups.items()}}


def read_mask(path: Path | None, size: int) -> np.ndarray | None:
    if path is None:
        return None
    with Image.open(path) as mask:
        return np.asarray(mask.convert("L").resize((size, size), Image.Resampling.NEAREST)) > 0


def pixel_rows(data: AnomalyData) -> list[int]:
    """The rows whose pixels count for pixel AUROC: those with a mask, and normal ones without (all
    normal pixels); anomalous rows without a mask are left out."""
    if data.masks is None:
        return []
    return [i for i, m in enumerate(data.masks) if m is not None or (data.labels and data.labels[i] == 0)]


def pixel_auroc(truth: list[np.ndarray], values: list[np.ndarray]) -> float | None:
    """AUROC over the collected pixels; None when they are all of one kind."""
    from sklearn.metrics import roc_auc_score

    if not truth:
        return None
    truth_all = np.concatenate(truth)
    if truth_all.all() or not truth_all.any():
        return None
    return float(roc_auc_score(truth_all, np.concatenate(values).astype(np.float32)))


def evaluate_anomaly(model: AnomalyModel, data: AnomalyData, folder: Path, reporter: Reporter,
                     batch_size: int = 16, extra: dict | None = None) -> dict:
    """Score every row of `data` into `folder`; returns (and writes) metrics.json's content, with the
    model's settings and `extra` (warnings, a chosen threshold) added."""
    from sklearn.metrics import roc_auc_score

    maps_dir, heat_dir = folder / "maps", folder / "heatmaps"
    for old in (maps_dir, heat_dir):
        shutil.rmtree(old, ignore_errors=True)
        old.mkdir(parents=True)
    reporter.log(f"scoring {len(data)} validation images")
    extremes: list[tuple[float, float]] = []

    def keep(start: int, scores: np.ndarray, maps: np.ndarray) -> None:
        for offset, anomaly_map in enumerate(maps):
            np.save(maps_dir / f"{start + offset:06d}.npy", anomaly_map.astype(np.float16))
            extremes.append((float(anomaly_map.min()), float(anomaly_map.max())))

    scores = model.predict(data.images, reporter, batch_size, on_batch=keep).scores
    labels = np.array(data.labels) if data.labels is not None else None
    both = labels is not None and 0 < labels.sum() < len(labels)
    metrics: dict = {"kind": "anomaly", "method": model.method, "images": len(data), "image_auroc": None,
                     "pixel_auroc": None}
    if both:
        assert labels is not None
        metrics["image_auroc"] = float(roc_auc_score(labels, scores))
        metrics["threshold"] = best_f1_threshold(labels, scores)
        metrics["threshold_method"] = "best F1 on the validation set"
        metrics["at_threshold"] = at_threshold(labels, scores, metrics["threshold"])
    else:
        metrics["threshold"] = float(np.percentile(scores, 95))
        metrics["threshold_method"] = "95th percentile of the scores (the validation set lacks normal/anomalous labels)"
    low = float(np.median([e[0] for e in extremes]))
    high = float(max(e[1] for e in extremes))
    metrics["map_range"] = [low, high]
    metrics["score_range"] = [float(scores.min()), float(scores.max())]
    metrics["histogram"] = score_histogram(scores, labels if both else None)
    order = np.argsort(-scores, kind="stable")
    metrics["most_anomalous"] = [int(i) for i in order[:MOST_ANOMALOUS]]
    reporter.log("drawing heat maps")
    size, usable = model.input_size, set(pixel_rows(data))
    step = max(1, int(np.ceil(np.sqrt(len(usable) * size * size / PIXEL_AUROC_MAX_PIXELS))))
    truth: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for index, path in enumerate(data.images):  # each saved map is read once: heat map + pixel AUROC
        if index % 50 == 0:
            check_stop(reporter)
        anomaly_map = np.load(maps_dir / f"{index:06d}.npy")
        heatmap_overlay(load_rgb(path, model.max_pixels), anomaly_map, low, high).save(
            heat_dir / f"{index:06d}.png", compress_level=1)
        if index in usable:
            assert data.masks is not None
            mask = read_mask(data.masks[index], size)
            truth.append((mask if mask is not None else np.zeros((size, size), bool))[::step, ::step].ravel())
            values.append(anomaly_map[::step, ::step].ravel())
    metrics["pixel_auroc"] = pixel_auroc(truth, values)
    tile([heat_dir / f"{i:06d}.png" for i in metrics["most_anomalous"]]).save(folder / "most_anomalous.png")
    write_anomaly_output(folder / "output_result.csv", data, scores)
    metrics.update({"settings": model.settings(), **(extra or {})})
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
    summary = [f"{k.replace('_', ' ')} {metrics[k]:.4f}" for k in ("image_auroc", "pixel_auroc") if metrics[k] is not None]
    reporter.log(", ".join(summary + [f"threshold {metrics['threshold']:.4f}"]))
    return metrics


def write_anomaly_output(path: Path, data: AnomalyData, scores: np.ndarray) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*data.header, "y'", "x'", "heatmap"])
        for index, (row, score) in enumerate(zip(data.rows, scores, strict=True)):
            # Full precision: the threshold is one of these scores, and a rounded score could fall below it.
            writer.writerow([*row, repr(float(score)), f"./maps/{index:06d}.npy", f"./heatmaps/{index:06d}.png"])
