"""Instances from files, for `manage.py predict`: an image, a folder of images, or a CSV (an NNC dataset
CSV whose `x` column names images, or, for tabular models, rows of inputs). Images travel as the
endpoint's base64 `data`, so the command answers exactly what the endpoint answers."""
from __future__ import annotations

import base64
import csv
from pathlib import Path

from nnc_web.engine.errors import UserError
from nnc_web.engine.imaging import IMAGE_SUFFIXES
from nnc_web.engine.nnc_csv import parse_header_cell
from nnc_web.engine.safe_paths import safe_join


def _image(path: Path) -> dict:
    return {"data": base64.b64encode(path.read_bytes()).decode()}


def _table_rows(path: Path, manifest: dict) -> list[tuple[str, dict]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise UserError(f"{path.name} is empty")
    header, body = rows[0], rows[1:]
    features = {f["column"] for f in manifest.get("features") or []}
    keys: list[str | None] = []
    for number, cell in enumerate(header):
        parsed = parse_header_cell(cell)
        if parsed.name == "x":
            keys.append(parsed.label or f"x__{parsed.index if parsed.index is not None else number}")
        elif features and cell in features:
            keys.append(cell)  # the original columns the Tabular plugin encodes
        else:
            keys.append(None)  # targets, comments and other columns are not inputs
    return [(f"{path.name} line {line}", {k: v for k, v in zip(keys, row, strict=False) if k is not None})
            for line, row in enumerate(body, start=2)]


def _image_rows(path: Path) -> list[tuple[str, dict]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    names = [parse_header_cell(c).name for c in rows[0]] if rows else []
    if "x" not in names:
        raise UserError(f"{path.name} has no image column x")
    column = names.index("x")
    found = []
    for row in rows[1:]:
        cell = row[column]
        # Absolute paths too: output_result.csv holds them (a server-side command, run by staff).
        found.append((cell, _image(Path(cell) if Path(cell).is_absolute() else safe_join(path.parent, cell))))
    return found


def instances_from(path: Path, inputs: str, manifest: dict) -> list[tuple[str, dict]]:
    """(what to call it, instance) for every input `path` holds; `inputs` is the model's (image | table)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if path.is_dir():
        images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise UserError(f"no images in {path}")
        return [(str(p.relative_to(path)), _image(p)) for p in images]
    if path.suffix.lower() == ".csv":
        return _table_rows(path, manifest) if inputs == "table" else _image_rows(path)
    if inputs == "table":
        raise UserError("a tabular model takes a CSV of inputs")
    return [(path.name, _image(path))]
