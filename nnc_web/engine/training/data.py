"""NNC image-classification datasets (x:image, y:label) as tensors for training."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from nnc_web.engine.nnc_csv import parse_header_cell, read_table
from nnc_web.engine.reporting import UserError
from nnc_web.engine.safe_paths import safe_join


@dataclass
class ClassificationData:
    csv_path: Path
    header: list[str]
    rows: list[list[str]]
    images: list[Path]
    labels: list[int]
    class_names: list[str]

    def fingerprint(self) -> str:
        """Changes whenever the CSV (and so the data) changes: part of the feature-cache key."""
        return hashlib.sha256(self.csv_path.read_bytes()).hexdigest()[:16]


def load_classification_csv(csv_path: Path) -> ClassificationData:
    header, rows = read_table(csv_path)
    cells = [parse_header_cell(c) for c in header]
    names = [c.name for c in cells]
    if "x" not in names or "y" not in names:
        raise UserError("a classification dataset needs an image column x and a label column y")
    x, y = names.index("x"), names.index("y")
    images, labels = [], []
    for number, row in enumerate(rows, start=2):
        try:
            images.append(safe_join(csv_path.parent, row[x]))
            labels.append(_class_index(row[y]))
        except ValueError:
            raise UserError(f"{csv_path.name} line {number}, column {header[y]}: {row[y]!r} is not a class index "
                            f"(a whole number from 0)") from None
        except (IndexError, UserError) as exc:
            raise UserError(f"{csv_path.name} line {number}: {exc}") from exc
    classes = list(cells[y].classes) or [str(i) for i in range(max(labels) + 1 if labels else 0)]
    return ClassificationData(csv_path, header, rows, images, labels, classes)


def _class_index(cell: str) -> int:
    value = float(cell)  # NNC writes "1" or "1.0"
    if not value.is_integer() or value < 0:
        raise ValueError(cell)
    return int(value)


class ImageDataset(Dataset):
    def __init__(self, images: list[Path], labels: list[int], transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.images[index]) as image:
            return self.transform(image.convert("RGB")), self.labels[index]
