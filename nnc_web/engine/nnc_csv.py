"""NNC dataset CSV: header cells `name[__index][:label]`, class names after the label as `;a;b`."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnc_web.engine.errors import UserError


@dataclass(frozen=True)
class HeaderCell:
    name: str
    index: int | None = None
    label: str | None = None
    classes: tuple[str, ...] = ()

    @property
    def is_comment(self) -> bool:
        return self.name.startswith("#")


def parse_header_cell(cell: str) -> HeaderCell:
    """Split `x__0:label;cat;dog` into name, index, label and class names."""
    left, sep, right = cell.partition(":")
    name, _, index_text = left.partition("__")
    index = int(index_text) if index_text.isdigit() else None
    label: str | None = None
    classes: tuple[str, ...] = ()
    if sep:
        label_parts = right.split(";")
        label = label_parts[0]
        classes = tuple(label_parts[1:])
    return HeaderCell(name=name.strip(), index=index, label=label, classes=classes)


def format_header_cell(cell: HeaderCell) -> str:
    text = cell.name if cell.index is None else f"{cell.name}__{cell.index}"
    if cell.label is not None or cell.classes:
        text += ":" + ";".join([cell.label or "", *cell.classes])
    return text


@dataclass
class Column:
    """A dataset variable as the browser shows it: `x` image `3,32,32`, `y` label `1`."""

    name: str
    label: str | None
    kind: str  # image | label | number | file
    shape: str
    classes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "kind": self.kind, "shape": self.shape,
                "classes": self.classes}


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def build_row_index(csv_path: Path) -> np.ndarray:
    """Byte offsets of every data row, so a page of a 100k-row CSV is read with one seek.

    Assumes one physical line per row, which our writers guarantee (no embedded newlines).
    """
    offsets: list[int] = []
    with open(csv_path, "rb") as handle:
        handle.readline()  # header
        position = handle.tell()
        for line in handle:
            if line.strip():
                offsets.append(position)
            position += len(line)
    return np.asarray(offsets, dtype=np.int64)


def read_table(csv_path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and every non-empty row of a whole CSV; a file without a header is a user error."""
    with open(csv_path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        rows = [row for row in reader if row]
    if not header:
        raise UserError(f"{csv_path.name} is empty")
    return header, rows


def read_header(csv_path: Path) -> list[str]:
    with open(csv_path, encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle))


def read_rows(csv_path: Path, offsets: np.ndarray, start: int, count: int) -> list[list[str]]:
    """Read `count` rows from row number `start` using the offset index."""
    if start >= len(offsets) or count <= 0:
        return []
    with open(csv_path, "rb") as handle:
        handle.seek(int(offsets[start]))
        lines = [handle.readline().decode("utf-8") for _ in range(min(count, len(offsets) - start))]
    return list(csv.reader(io.StringIO("".join(lines))))
