"""COCO detection annotations (`_annotations.coco.json`, bbox = [x, y, w, h] in pixels) as boxes."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from nnc_web.engine.detection import Box
from nnc_web.engine.reporting import UserError
from nnc_web.engine.safe_paths import UnsafePathError, safe_join


@dataclass
class CocoSplit:
    images: list[tuple[Path, str]] = field(default_factory=list)  # (file, output stem)
    labels: list[list[Box]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dropped_annotations: int = 0


def load_coco(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path.name} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise UserError(f"{path.name} is not a COCO file (no 'images' list)")
    return document


def used_categories(documents: list[dict]) -> list[tuple[int, str]]:
    """Categories that some annotation uses, by id: Roboflow-style exports add an unused parent."""
    used = {a.get("category_id") for d in documents for a in d.get("annotations", []) if isinstance(a, dict)}
    names = {c["id"]: str(c.get("name", c["id"])) for d in documents for c in d.get("categories", [])
             if isinstance(c, dict) and "id" in c}
    return sorted((cid, names[cid]) for cid in used if cid in names)


def _image_size(entry: dict, path: Path) -> tuple[int, int]:
    width, height = entry.get("width"), entry.get("height")
    if isinstance(width, int | float) and isinstance(height, int | float) and width > 0 and height > 0:
        return int(width), int(height)
    with Image.open(path) as image:  # header only
        return image.size


def read_coco_split(document: dict, folder: Path, category_index: dict[int, int], label: str) -> CocoSplit:
    """Images (paths checked to stay in `folder`) and their normalised, clipped boxes; every bad entry
    becomes a problem line naming the JSON file and the image or annotation id."""
    split = CocoSplit()
    by_id: dict[object, int] = {}
    sizes: list[tuple[int, int]] = []
    for entry in document["images"]:
        if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("file_name"), str):
            split.problems.append(f"{label}: image entry without id or file_name skipped")
            continue
        try:
            path = safe_join(folder, entry["file_name"])
        except UnsafePathError as exc:
            split.problems.append(f"{label} image {entry['id']}: {exc}")
            continue
        if not path.is_file():
            split.problems.append(f"{label} image {entry['id']}: {entry['file_name']} is missing")
            continue
        try:
            sizes.append(_image_size(entry, path))
        except OSError:
            split.problems.append(f"{label} image {entry['id']}: {entry['file_name']} is not a readable image")
            continue
        by_id[entry["id"]] = len(split.images)
        split.images.append((path, path.relative_to(folder.resolve()).with_suffix("").as_posix()))
        split.labels.append([])
    for ann in document.get("annotations", []):
        ann_id = ann.get("id", "?") if isinstance(ann, dict) else "?"
        problem = _add_annotation(ann, by_id, sizes, category_index, split)
        if problem:
            split.dropped_annotations += 1
            split.problems.append(f"{label} annotation {ann_id}: {problem}")
    return split


def _add_annotation(ann: object, by_id: dict, sizes: list, category_index: dict[int, int],
                    split: CocoSplit) -> str | None:
    if not isinstance(ann, dict):
        return "not an object"
    if ann.get("image_id") not in by_id:
        return f"unknown image id {ann.get('image_id')}"
    if ann.get("category_id") not in category_index:
        return f"unknown category id {ann.get('category_id')}"
    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
        return f"bbox must be [x, y, width, height], got {bbox!r}"
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        return f"bbox {bbox} has no area"
    index = by_id[ann["image_id"]]
    width, height = sizes[index]
    x0, y0 = max(0.0, x / width), max(0.0, y / height)
    x1, y1 = min(1.0, (x + w) / width), min(1.0, (y + h) / height)
    if x1 <= x0 or y1 <= y0:
        return f"bbox {bbox} lies outside the {width}x{height} image"
    split.labels[index].append(Box(category_index[ann["category_id"]], (x0 + x1) / 2, (y0 + y1) / 2,
                                   x1 - x0, y1 - y0))
    return None
