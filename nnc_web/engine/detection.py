"""Object-detection targets in NNC's formats: YOLO v2 label/region grids and CenterNet heat maps.

Boxes are (class, cx, cy, w, h) normalised to [0, 1] with (0, 0) at the top left, as YOLO writes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Box:
    cls: int
    cx: float
    cy: float
    w: float
    h: float

    def corners(self) -> tuple[float, float, float, float]:
        return (self.cx - self.w / 2, self.cy - self.h / 2, self.cx + self.w / 2, self.cy + self.h / 2)


@dataclass
class LabelFile:
    boxes: list[Box]
    problems: list[str]  # "line N: why", one per dropped line


def read_yolo_labels(path: Path, num_class: int) -> LabelFile:
    """Parse a YOLO v2 `.txt`; malformed lines, out-of-range boxes and unknown classes are dropped
    and reported with their line number."""
    boxes: list[Box] = []
    problems: list[str] = []
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 5:
                raise ValueError
            cls_value = float(parts[0])
            cx, cy, w, h = (float(p) for p in parts[1:])
        except ValueError:
            problems.append(f"line {number}: expected 'class cx cy w h', got {line.strip()[:60]!r}")
            continue
        if not cls_value.is_integer() or cls_value < 0:
            problems.append(f"line {number}: class {parts[0]} is not a class index")
        elif cls_value >= num_class:
            problems.append(f"line {number}: class {int(cls_value)} >= num_class {num_class}")
        elif not all(math.isfinite(v) for v in (cx, cy, w, h)) or not (0 <= cx <= 1 and 0 <= cy <= 1
                                                                         and 0 < w <= 1 and 0 < h <= 1):
            problems.append(f"line {number}: box {cx:g} {cy:g} {w:g} {h:g} is out of range 0..1")
        else:
            boxes.append(Box(int(cls_value), cx, cy, w, h))
    return LabelFile(boxes, problems)


def warp_box(box: Box, fractions: tuple[float, float, float, float]) -> Box | None:
    """Map a source-normalised box through the shaping box (crop/pad then resize; `fractions` is
    that box in fractions of the source), then clip it to the image. None when nothing is left.

    This is the correct warp (NNC's own YOLO plugin corrupts boxes under trimming and padding)."""
    left, top, right, bottom = fractions
    x0, y0, x1, y1 = box.corners()
    nx0, nx1 = (x0 - left) / (right - left), (x1 - left) / (right - left)
    ny0, ny1 = (y0 - top) / (bottom - top), (y1 - top) / (bottom - top)
    nx0, nx1 = max(0.0, nx0), min(1.0, nx1)
    ny0, ny1 = max(0.0, ny0), min(1.0, ny1)
    if nx1 - nx0 <= 1e-9 or ny1 - ny0 <= 1e-9:
        return None
    return Box(box.cls, (nx0 + nx1) / 2, (ny0 + ny1) / 2, nx1 - nx0, ny1 - ny0)


def kmeans_anchors(sizes: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Anchors: k-means on the boxes' (w, h) (squared Euclidean), seeded, sorted by area.

    NNC starts from a random assignment of boxes to clusters, which often collapses into duplicate
    anchors; scikit-learn's k-means++ with several starts does not. With fewer distinct sizes than
    k, the missing anchors repeat the largest one.
    """
    from sklearn.cluster import KMeans

    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    if len(sizes) == 0:
        return np.full((k, 2), 0.5)
    distinct = len(np.unique(sizes, axis=0))
    clusters = min(k, distinct)
    means = KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit(sizes).cluster_centers_
    means = means[np.argsort(means[:, 0] * means[:, 1], kind="stable")]
    if clusters < k:
        means = np.vstack([means, np.repeat(means[-1:], k - clusters, axis=0)])
    return means


def _centred_iou(w: float, h: float, anchors: np.ndarray) -> np.ndarray:
    inter = np.minimum(w, anchors[:, 0]) * np.minimum(h, anchors[:, 1])
    return inter / (w * h + anchors[:, 0] * anchors[:, 1] - inter)


def _cell(value: float, cells: int) -> int:
    return min(int(value * cells), cells - 1)  # a centre exactly on the far edge stays in the grid


def yolo_targets(boxes: list[Box], anchors: np.ndarray, grid_w: int, grid_h: int) -> tuple[np.ndarray, np.ndarray]:
    """label (A, gh, gw) = class or -1; region (A, gh, gw, 4) = tx, ty, ln(w*gw), ln(h*gh)."""
    count = len(anchors)
    label = np.full((count, grid_h, grid_w), -1, dtype=np.int64)
    region = np.zeros((count, grid_h, grid_w, 4), dtype=np.float64)
    for box in boxes:
        gx, gy = _cell(box.cx, grid_w), _cell(box.cy, grid_h)
        ious = _centred_iou(box.w, box.h, anchors)
        slot = int(ious.argmax()) if ious.max() > 0 else 0
        label[slot, gy, gx] = box.cls  # a later box in the same cell and slot wins, as in NNC
        region[slot, gy, gx] = (box.cx * grid_w - gx, box.cy * grid_h - gy,
                                math.log(box.w * grid_w), math.log(box.h * grid_h))
    return label, region


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CornerNet's radius: the smallest corner shift that keeps IoU >= min_overlap."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def _draw_gaussian(heat: np.ndarray, cx: int, cy: int, radius: int) -> None:
    diameter = 2 * radius + 1
    sigma = diameter / 6
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-(offsets[None, :] ** 2 + offsets[:, None] ** 2) / (2 * sigma * sigma))
    kernel[kernel < np.finfo(kernel.dtype).eps * kernel.max()] = 0
    height, width = heat.shape
    left, right = min(cx, radius), min(width - cx, radius + 1)
    top, bottom = min(cy, radius), min(height - cy, radius + 1)
    patch = heat[cy - top:cy + bottom, cx - left:cx + right]
    kernel_patch = kernel[radius - top:radius + bottom, radius - left:radius + right]
    np.maximum(patch, kernel_patch, out=patch)


def centernet_targets(boxes: list[Box], num_class: int, grid_w: int, grid_h: int) -> tuple[np.ndarray, np.ndarray]:
    """heat (C, gh, gw): a Gaussian per box in its class channel; region (1, gh, gw, 4) at centres."""
    heat = np.zeros((num_class, grid_h, grid_w), dtype=np.float64)
    region = np.zeros((1, grid_h, grid_w, 4), dtype=np.float64)
    for box in boxes:
        gx, gy = _cell(box.cx, grid_w), _cell(box.cy, grid_h)
        radius = max(0, int(gaussian_radius(math.ceil(box.h * grid_h), math.ceil(box.w * grid_w))))
        _draw_gaussian(heat[box.cls], gx, gy, radius)
        region[0, gy, gx] = (box.cx * grid_w - gx, box.cy * grid_h - gy,
                             math.log(box.w * grid_w), math.log(box.h * grid_h))
    return heat, region


def save_grid_csv(path: Path, array: np.ndarray, fmt: str) -> None:
    """(A, gh, gw) as A*gh rows x gw columns; (A, gh, gw, 4) as A*gh rows x gw*4 columns."""
    rows = array.reshape(array.shape[0] * array.shape[1], -1)
    np.savetxt(path, rows, fmt=fmt, delimiter=",")


def decode_yolo(label: np.ndarray, region: np.ndarray) -> list[Box]:
    """Boxes back from the label and region grids (what the network is trained to predict)."""
    count, grid_h, grid_w = label.shape
    boxes = []
    for slot, gy, gx in zip(*np.nonzero(label >= 0), strict=True):
        tx, ty, tw, th = region[slot, gy, gx]
        boxes.append(Box(int(label[slot, gy, gx]), (gx + tx) / grid_w, (gy + ty) / grid_h,
                         math.exp(tw) / grid_w, math.exp(th) / grid_h))
    return boxes


def format_boxes(boxes: list[Box]) -> str:
    """Boxes as YOLO text (one `class cx cy w h` per line), kept beside each image for viewers and trainers."""
    return "".join(f"{b.cls} {b.cx:.6f} {b.cy:.6f} {b.w:.6f} {b.h:.6f}\n" for b in boxes)


def iou(a: Box, b: Box) -> float:
    ax0, ay0, ax1, ay1 = a.corners()
    bx0, by0, bx1, by1 = b.corners()
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0
