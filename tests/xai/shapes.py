"""A data set where the truth of an explanation is known: a square (class 0) or a disc (class 1) of a
random colour at a random place on textured noise. Only the object decides the class, so a faithful
map is hot inside the object's box."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

CLASSES = ("square", "disc")
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def shape_image(rng: np.random.Generator, size: int, label: int) -> tuple[Image.Image, Box]:
    noise = rng.normal(0, 1, (size, size, 3))
    texture = gaussian_filter(noise, sigma=(2, 2, 0)) * 90 + rng.normal(0, 18, (size, size, 3)) + 128
    image = Image.fromarray(np.clip(texture, 0, 255).astype(np.uint8))
    side = int(rng.uniform(0.18, 0.26) * size)
    x0, y0 = (int(v) for v in rng.integers(0, size - side, 2))
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    box = (x0, y0, x0 + side, y0 + side)
    draw = ImageDraw.Draw(image)
    (draw.rectangle if label == 0 else draw.ellipse)((x0, y0, x0 + side - 1, y0 + side - 1), fill=colour)
    return image, box


def write_shapes(folder: Path, count: int, size: int, seed: int) -> tuple[Path, list[Box]]:
    """`count` images (classes alternate) as an NNC dataset `x:image,y:label;square;disc`; the CSV and
    each row's object box."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows, boxes = [], []
    for index in range(count):
        label = index % 2
        image, box = shape_image(rng, size, label)
        image.save(folder / "images" / f"{index}.png")
        rows.append([f"./images/{index}.png", str(label)])
        boxes.append(box)
    path = folder / "shapes.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["x:image", "y:label;" + ";".join(CLASSES)])
        writer.writerows(rows)
    return path, boxes


def box_mask(size: int, box: Box) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = True
    return mask


def hot_inside(values: np.ndarray, box: Box, factor: float = 2.0) -> bool:
    """The pointing criterion: the mean inside the box is at least `factor` times the mean outside."""
    inside = box_mask(values.shape[0], box)
    return float(values[inside].mean()) >= factor * float(values[~inside].mean()) and values[inside].mean() > 0
