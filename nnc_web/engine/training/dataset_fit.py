"""Which datasets a trainer can learn from, judged from a dataset's registered columns (name, kind,
shape: `x` image `3,32,32`, `y` label), so a run with the wrong kind of data is refused before it
starts, with a message that names what the dataset is and what would fit."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetNeeds:
    """What a trainer's datasets must hold."""

    what: str  # for messages: "an image-classification dataset (x: image, y: label)"
    x: tuple[str, ...]  # column kinds x may have
    y: tuple[str, ...]  # column kinds y may have
    y_optional: bool = False  # datasets without a y fit too
    channels: int | None = None  # images must have this many channels (None: any; trainers convert)
    boxes: bool = False  # some column must hold box files (y:boxes, or #boxes beside YOLO v2 / CenterNet grids)


IMAGE_CLASSIFICATION = DatasetNeeds("an image-classification dataset (x: image, y: label), e.g. from Image "
                                    "Classification or EasyMaker image classification", ("image",), ("label",))
TABULAR = DatasetNeeds("a tabular dataset (x: numbers, y: a label or a number) from the Tabular dataset plugin",
                       ("number",), ("label", "number"))
ANOMALY = DatasetNeeds("an image dataset of 3-channel images, labelled normal/anomalous or unlabelled, e.g. from "
                       "Anomaly detection (MVTec AD layout) or Image Classification with channel 3",
                       ("image",), ("label",), y_optional=True, channels=3)

DETECTION = DatasetNeeds("an object-detection dataset (x: image, y: boxes), e.g. from COCO object detection or "
                         "Object Detection (from Yolo v2 format)", ("image",), ("boxes", "file"), boxes=True)
SEGMENTATION = DatasetNeeds("a segmentation dataset (x: image, y: mask), e.g. from Semantic segmentation "
                            "(EasyMaker layout)", ("image",), ("mask",))


def _column(columns: list[dict], name: str) -> dict | None:
    return next((c for c in columns if c.get("name") == name), None)


def _channels(column: dict) -> int | None:
    first = str(column.get("shape", "")).split(",")[0]
    return int(first) if first.isdigit() else None


def kind_of(columns: list[dict]) -> str:
    """What a dataset is, in words: "an object-detection dataset (y: boxes)"."""
    x, y = _column(columns, "x"), _column(columns, "y")
    y_kind = y.get("kind") if y is not None else None
    if y_kind == "boxes":
        return "an object-detection dataset (y: boxes)"
    if y_kind == "file" or any(c.get("kind") == "boxes" for c in columns):  # YOLO v2 / CenterNet
        return "an object-detection dataset (y: label grids)"
    if y_kind == "mask":
        return "a segmentation dataset (y: mask)"
    if x is not None and x.get("kind") == "number":
        return "a tabular dataset (x: numbers)"
    if x is not None and x.get("kind") == "image":
        return "an image-classification dataset" if y_kind == "label" else "an image dataset without labels"
    described = ", ".join(f"{c.get('name')}: {c.get('kind')}" for c in columns[:4])
    return f"a dataset of {described}" if described else "a dataset without recorded columns"


def mismatch(columns: list[dict], needs: DatasetNeeds) -> str | None:
    """Why a dataset does not fit (None: it fits, or its columns were never recorded and the run checks)."""
    if not columns:
        return None
    x, y = _column(columns, "x"), _column(columns, "y")
    if x is None or x.get("kind") not in needs.x or (y is None and not needs.y_optional) \
            or (y is not None and y.get("kind") not in needs.y) \
            or (needs.boxes and not any(c.get("kind") == "boxes" for c in columns)):
        return f"is {kind_of(columns)}"
    if needs.channels is not None and _channels(x) not in (None, needs.channels):
        return f"has {_channels(x)}-channel images"
    return None
