"""Anomaly-detection datasets: NNC CSVs with an image column `x`, an optional label `y` (normal or
anomalous, see `normal_label`) and an optional `mask` image column (white = anomalous pixels)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnc_web.engine.nnc_csv import parse_header_cell, read_table
from nnc_web.engine.reporting import UserError
from nnc_web.engine.safe_paths import safe_join

NORMAL_NAMES = ("0", "good", "normal", "ok")


def normal_label(class_names: tuple[str, ...]) -> int:
    """The label index of normal images: the class named 0/good/normal/ok, else index 0 (sorted
    class folders `bad`, `good` would otherwise make `bad` the normal class)."""
    lowered = [name.strip().lower() for name in class_names]
    return next((lowered.index(n) for n in NORMAL_NAMES if n in lowered), 0)


def anomaly_label(cell: str, normal: int) -> int:
    """A y cell as 0 (the normal class) or 1 (anything else)."""
    return 0 if int(float(cell)) == normal else 1


@dataclass
class AnomalyData:
    csv_path: Path
    header: list[str]
    rows: list[list[str]]
    images: list[Path]
    labels: list[int] | None  # 0 normal, 1 anomalous (see normal_label); None without a y column
    masks: list[Path | None] | None  # None when the dataset has no mask column

    def __len__(self) -> int:
        return len(self.images)

    def normal_images(self) -> list[Path]:
        if self.labels is None:
            return list(self.images)
        return [p for p, label in zip(self.images, self.labels, strict=True) if label == 0]


def load_anomaly_csv(csv_path: Path) -> AnomalyData:
    header, rows = read_table(csv_path)
    cells = [parse_header_cell(c) for c in header]
    names = [c.name for c in cells]
    if "x" not in names:
        raise UserError(f"{csv_path.name} has no image column x")
    x = names.index("x")
    y = names.index("y") if "y" in names else None
    mask = names.index("mask") if "mask" in names else None
    normal = normal_label(cells[y].classes) if y is not None else 0
    images, labels, masks = [], [], []
    for number, row in enumerate(rows, start=2):
        try:
            images.append(safe_join(csv_path.parent, row[x]))
            if y is not None:
                labels.append(anomaly_label(row[y], normal))
            if mask is not None:
                masks.append(safe_join(csv_path.parent, row[mask]) if row[mask].strip() else None)
        except (ValueError, IndexError, UserError) as exc:
            raise UserError(f"{csv_path.name} line {number}: {exc}") from exc
    if not images:
        raise UserError(f"{csv_path.name} has no rows")
    return AnomalyData(csv_path, header, rows, images, labels if y is not None else None,
                       masks if mask is not None else None)
