"""EasyMaker segmentation datasets (x:image, y:label;<names> pointing at a class-id mask PNG) as tensors."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from nnc_web.engine.nnc_csv import parse_header_cell, read_table
from nnc_web.engine.reporting import UserError
from nnc_web.engine.safe_paths import safe_join
from nnc_web.engine.segmentation import IGNORE


@dataclass
class SegmentationData:
    csv_path: Path
    header: list[str]
    rows: list[list[str]]
    images: list[Path]
    masks: list[Path]
    class_names: list[str]


def load_segmentation_csv(csv_path: Path) -> SegmentationData:
    header, rows = read_table(csv_path)
    cells = [parse_header_cell(c) for c in header]
    names = [c.name for c in cells]
    if "x" not in names or "y" not in names:
        raise UserError("a segmentation dataset needs an image column x and a mask column y")
    x, y = names.index("x"), names.index("y")
    if rows and not rows[0][y].lower().endswith(".png"):
        raise UserError(f"not a segmentation dataset: column {header[y]} holds {rows[0][y]!r}, not a mask image "
                        f"(use Semantic segmentation (EasyMaker layout))")
    images, masks = [], []
    for number, row in enumerate(rows, start=2):
        try:
            images.append(safe_join(csv_path.parent, row[x]))
            masks.append(safe_join(csv_path.parent, row[y]))
        except (IndexError, UserError) as exc:
            raise UserError(f"{csv_path.name} line {number}: {exc}") from exc
    return SegmentationData(csv_path, header, rows, images, masks, list(cells[y].classes))


def read_mask(path: Path, size: int | None = None) -> np.ndarray:
    with Image.open(path) as mask:
        if size is not None and mask.size != (size, size):
            mask = mask.resize((size, size), Image.Resampling.NEAREST)
        return np.asarray(mask, dtype=np.int64)


def check_masks(data: SegmentationData, num_classes: int, label: str) -> None:
    """Mask ids outside the label map (other than 255, ignore) stop the run before it trains."""
    for path in data.masks:
        ids = np.unique(read_mask(path))
        unknown = [int(i) for i in ids if i >= num_classes and i != IGNORE]
        if unknown:
            raise UserError(f"{label} mask {path.name} has class ids {', '.join(map(str, unknown))} outside the label "
                            f"map (0..{num_classes - 1}, {IGNORE} = ignore)")


class SegmentationDataset(Dataset):
    def __init__(self, data: SegmentationData, size: int, mean, std, augmentation: list[str] = (),
                 seed: int = 0) -> None:
        self.data, self.size, self.augmentation = data, size, list(augmentation)
        self.mean, self.std = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
        self.random = random.Random(seed)

    def __len__(self) -> int:
        return len(self.data.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        with Image.open(self.data.images[index]) as image:
            pixels = np.asarray(image.convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR),
                                dtype=np.float32) / 255.0
        mask = read_mask(self.data.masks[index], self.size)
        if "flip" in self.augmentation and self.random.random() < 0.5:  # the mask flips with the pixels
            pixels, mask = pixels[:, ::-1], mask[:, ::-1]
        tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)
        return (tensor - self.mean) / self.std, torch.from_numpy(np.ascontiguousarray(mask))
