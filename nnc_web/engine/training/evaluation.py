"""Evaluation of a classifier over a dataset: NNC's output_result.csv and the metrics."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
from torch.utils.data import DataLoader

from nnc_web.engine.nnc_csv import parse_header_cell
from nnc_web.engine.reporting import JobCancelled, Reporter
from nnc_web.engine.training.data import ClassificationData, ImageDataset
from nnc_web.engine.training.trainer import transforms_for


def predict(model: torch.nn.Module, data: ClassificationData, backbone_id: str, size: int, device: torch.device,
            reporter: Reporter, batch_size: int = 64) -> np.ndarray:
    """Softmax scores (rows x classes), in the dataset's row order."""
    loader = DataLoader(ImageDataset(data.images, data.labels, transforms_for(backbone_id, size, [])),
                        batch_size=batch_size, shuffle=False)
    model.eval()
    scores = []
    with torch.no_grad():
        for done, (images, _) in enumerate(loader, start=1):
            if reporter.should_stop():
                raise JobCancelled("cancelled by the user")
            scores.append(torch.softmax(model(images.to(device)), dim=1).cpu().numpy())
            reporter.progress(min(done * batch_size, len(data.images)), len(data.images))
    return np.concatenate(scores) if scores else np.zeros((0, 0))


def classification_metrics(labels: list[int], scores: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy; macro precision, recall and F1 (sklearn's standard definitions: precision = correct /
    predicted as the class, recall = correct / actually the class); per class; confusion matrix."""
    classes = list(range(scores.shape[1]))
    predicted = scores.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=classes,
                                                                     zero_division=0)
    matrix = confusion_matrix(labels, predicted, labels=classes)
    rows = matrix.sum(axis=1, keepdims=True)
    names = class_names + [str(i) for i in range(len(class_names), len(classes))]
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision_macro": float(precision.mean()), "recall_macro": float(recall.mean()), "f1_macro": float(f1.mean()),
        "per_class": [{"class": names[i], "precision": float(precision[i]), "recall": float(recall[i]),
                       "f1": float(f1[i]), "support": int(support[i])} for i in classes],
        "confusion_matrix": matrix.tolist(),
        "confusion_matrix_normalized": np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0).tolist(),
        "class_names": names,
        "histogram": {"actual": np.bincount(labels, minlength=len(classes)).tolist(),
                      "predicted": np.bincount(predicted, minlength=len(classes)).tolist()},
    }


def most_least_activating(labels: list[int], scores: np.ndarray, count: int = 5) -> list[dict]:
    """Per class, among the images of that class: the rows with the highest and the lowest score of
    that class (the latter are where label errors hide)."""
    labels_array = np.asarray(labels)
    result = []
    for cls in range(scores.shape[1]):
        rows = np.nonzero(labels_array == cls)[0]
        order = rows[np.argsort(-scores[rows, cls], kind="stable")]
        result.append({"class": cls, "most": order[:count].tolist(), "least": order[::-1][:count].tolist()})
    return result


def write_output_result(path: Path, data: ClassificationData, scores: np.ndarray) -> None:
    """NNC's output_result.csv: the source columns (file paths made absolute, as NNC's evaluation does
    so post-processing can open them from the result folder), then y'__0 ... y'__K-1."""
    cells = [parse_header_cell(c) for c in data.header]
    file_columns = [i for i, c in enumerate(cells) if c.name == "x"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(data.header + [f"y'__{k}" for k in range(scores.shape[1])])
        for row, row_scores in zip(data.rows, scores, strict=True):
            row = list(row)
            for i in file_columns:
                row[i] = str((data.csv_path.parent / row[i]).resolve())
            writer.writerow(row + [f"{s:.6g}" for s in row_scores])


def evaluate_into(folder: Path, model: torch.nn.Module, backbone_id: str, input_size: int, data: ClassificationData,
                  device: torch.device, reporter: Reporter, batch_size: int = 64) -> dict:
    """Evaluate a trained classifier over a dataset into a run folder: output_result.csv, metrics.json."""
    reporter.log(f"evaluating on {len(data.labels)} validation images")
    scores = predict(model.to(device), data, backbone_id, input_size, device, reporter, batch_size)
    write_output_result(folder / "output_result.csv", data, scores)
    metrics = classification_metrics(data.labels, scores, data.class_names)
    metrics["activation_extremes"] = most_least_activating(data.labels, scores)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
    reporter.log(f"accuracy {metrics['accuracy']:.4f}, macro precision {metrics['precision_macro']:.4f}, "
                 f"macro recall {metrics['recall_macro']:.4f}, macro F1 {metrics['f1_macro']:.4f}")
    return metrics
