""""Why did it fail" (the MATLAB walkthrough of NNC's seeds): per class, the validation images that
activate it most and least and the misclassified ones, each shown beside its Grad-CAM overlays (for its
true class and for the class the model predicted), so the cause of a failure can be seen."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("most", "least", "misclassified")


@dataclass(frozen=True)
class Pick:
    class_index: int  # the class the pick is about (the row's true class)
    kind: str  # most / least activating of the class, or misclassified
    rank: int  # 1-based within (class, kind)
    row: int  # 0-based row of the input
    predicted: int
    score: float  # the row's score of class_index


def pick_rows(labels: np.ndarray, scores: np.ndarray, per_class: int) -> list[Pick]:
    """Among the rows labelled c: the `per_class` highest and lowest scores of c, and the misclassified
    rows (argmax != c), lowest score of c first (the worst failures). Ties keep the row order."""
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    predicted = scores.argmax(axis=1)
    picks: list[Pick] = []
    for c in range(scores.shape[1]):
        members = np.flatnonzero(labels == c)
        if members.size == 0:
            continue
        own = scores[members, c]
        high = members[np.argsort(-own, kind="stable")][:per_class]
        low = members[np.argsort(own, kind="stable")][:per_class]
        wrong = members[predicted[members] != c]
        wrong = wrong[np.argsort(scores[wrong, c], kind="stable")][:per_class]
        for kind, rows in zip(KINDS, (high, low, wrong), strict=True):
            picks += [Pick(c, kind, rank, int(r), int(predicted[r]), float(scores[r, c]))
                      for rank, r in enumerate(rows, start=1)]
    return picks


def side_by_side(*pictures: np.ndarray, gap: int = 2) -> np.ndarray:
    """RGB pictures of one height in a row, a white gap between them."""
    rgb = [p if p.ndim == 3 else np.repeat(p[..., None], 3, axis=2) for p in pictures]
    spacer = np.full((rgb[0].shape[0], gap, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, p in enumerate(rgb):
        parts += ([spacer] if i else []) + [p.astype(np.uint8)]
    return np.concatenate(parts, axis=1)
