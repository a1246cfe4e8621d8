"""Detection datasets as training data: `x:image,y:boxes` (COCO import) or the YOLO v2 / CenterNet
datasets through their `#boxes` column; each box file holds `class cx cy w h` lines, normalised."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from nnc_web.engine.detection import Box
from nnc_web.engine.nnc_csv import parse_header_cell, read_table
from nnc_web.engine.reporting import UserError
from nnc_web.engine.safe_paths import safe_join

MIN_SIDE = 1e-3  # a box thinner than this (normalised) after augmentation is dropped


@dataclass
class DetectionData:
    csv_path: Path
    header: list[str]
    rows: list[list[str]]
    images: list[Path]
    boxes: list[list[Box]]

    @property
    def box_count(self) -> int:
        return sum(len(b) for b in self.boxes)

    def num_classes(self) -> int:
        return max((b.cls for boxes in self.boxes for b in boxes), default=-1) + 1


def _boxes_column(header: list[str]) -> int:
    cells = [parse_header_cell(c) for c in header]
    for i, cell in enumerate(cells):
        if cell.name == "y" and cell.label == "boxes":
            return i
    for i, cell in enumerate(cells):
        if cell.name == "#boxes":
            return i
    names = ", ".join(header)
    raise UserError(f"not a detection dataset (columns {names}): a detector needs boxes - a y:boxes column "
                    f"(COCO import) or a #boxes column (Object Detection from YOLO v2 format)")


def read_box_file(path: Path, label: str) -> list[Box]:
    boxes = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cls, cx, cy, w, h = line.split()
            boxes.append(Box(int(cls), float(cx), float(cy), float(w), float(h)))
        except ValueError:
            raise UserError(f"{label} line {number}: expected 'class cx cy w h', got {line[:60]!r}") from None
    return boxes


def load_detection_csv(csv_path: Path) -> DetectionData:
    header, rows = read_table(csv_path)
    names = [parse_header_cell(c).name for c in header]
    if "x" not in names:
        raise UserError("a detection dataset needs an image column x")
    x, column = names.index("x"), _boxes_column(header)
    images, boxes = [], []
    for number, row in enumerate(rows, start=2):
        try:
            images.append(safe_join(csv_path.parent, row[x]))
            box_path = safe_join(csv_path.parent, row[column])
            boxes.append(read_box_file(box_path, f"{csv_path.name} line {number} ({row[column]})"))
        except (IndexError, OSError) as exc:
            raise UserError(f"{csv_path.name} line {number}: {exc.__class__.__name__}: the row's files cannot be "
                            f"read") from exc
    return DetectionData(csv_path, header, rows, images, boxes)


def affine_boxes(boxes: list[Box], scale: float, dx: float, dy: float, flip: bool) -> list[Box]:
    """Boxes through the same map as the pixels: flip, then scale about the centre, then shift
    (all in normalised units), clipped to the image; boxes left without area are dropped."""
    moved = []
    for box in boxes:
        x0, y0, x1, y1 = box.corners()
        if flip:
            x0, x1 = 1 - x1, 1 - x0
        x0, x1 = (x0 - 0.5) * scale + 0.5 + dx, (x1 - 0.5) * scale + 0.5 + dx
        y0, y1 = (y0 - 0.5) * scale + 0.5 + dy, (y1 - 0.5) * scale + 0.5 + dy
        x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(1.0, x1), min(1.0, y1)
        if x1 - x0 > MIN_SIDE and y1 - y0 > MIN_SIDE:
            moved.append(Box(box.cls, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0))
    return moved


def affine_image(image: Image.Image, scale: float, dx: float, dy: float, flip: bool) -> Image.Image:
    """The pixel side of affine_boxes (PIL maps output to input: the inverse transform)."""
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    w, h = image.size
    # output (u, v) <- input ((u - cx - dx*w) / s + cx, ...)
    a, e = 1 / scale, 1 / scale
    c = w / 2 - (w / 2 + dx * w) / scale
    f = h / 2 - (h / 2 + dy * h) / scale
    return image.transform(image.size, Image.Transform.AFFINE, (a, 0, c, 0, e, f), Image.Resampling.BILINEAR)


class DetectionDataset(Dataset):
    """(normalised image tensor, boxes tensor (n, 5): class, x0, y0, x1, y1 normalised)."""

    def __init__(self, data: DetectionData, size: int, mean, std, augmentation: list[str] = (),
                 seed: int = 0) -> None:
        self.data, self.size, self.augmentation = data, size, list(augmentation)
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)
        self.random = random.Random(seed)

    def __len__(self) -> int:
        return len(self.data.images)

    def load(self, index: int) -> Image.Image:
        with Image.open(self.data.images[index]) as image:
            return image.convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, boxes = self.load(index), self.data.boxes[index]
        if self.augmentation:
            pick = self.random
            flip = "flip" in self.augmentation and pick.random() < 0.5
            scale = pick.uniform(0.75, 1.25) if "scale" in self.augmentation else 1.0
            shift = 0.15 if "translate" in self.augmentation else 0.0
            dx, dy = pick.uniform(-shift, shift), pick.uniform(-shift, shift)
            image, boxes = affine_image(image, scale, dx, dy, flip), affine_boxes(boxes, scale, dx, dy, flip)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        if "brightness" in self.augmentation:
            pixels = (pixels * self.random.uniform(0.8, 1.2)).clamp(0, 1)
        target = torch.tensor([[b.cls, *b.corners()] for b in boxes], dtype=torch.float32).reshape(-1, 5)
        return (pixels - self.mean) / self.std, target


def collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]
