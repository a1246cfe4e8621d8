"""Build NNC object-detection datasets (YOLO v2 grids or CenterNet heat maps) from YOLO v2 sources:
images with a same-name `.txt` of `class cx cy w h` lines, searched recursively."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnc_web.engine.classification_dataset import ShapingParams, is_visible
from nnc_web.engine.dataset_outputs import BuiltDataset, OutputSpec, Row, active_outputs, write_outputs
from nnc_web.engine.detection import (
    Box,
    centernet_targets,
    format_boxes,
    kmeans_anchors,
    read_yolo_labels,
    save_grid_csv,
    warp_box,
    yolo_targets,
)
from nnc_web.engine.imaging import IMAGE_SUFFIXES, ImageRejected, convert_image
from nnc_web.engine.nnc_csv import Column
from nnc_web.engine.parallel import parallel_map
from nnc_web.engine.reporting import Reporter, UserError, check_stop, log_list
from nnc_web.engine.safe_paths import clean_relative

HEADER = ["x:image", "y:label", "r:region", "#boxes"]  # '#' columns are comments NNC skips
BOXES_HEADER = ["x:image", "y:boxes"]  # kind "boxes": images and their boxes, for detection trainers


@dataclass(frozen=True)
class DetectionParams:
    shaping: ShapingParams
    num_class: int
    grid_size: int
    kind: str = "yolo"  # yolo | centernet | boxes (no grids)
    num_anchor: int = 5

    def __post_init__(self) -> None:
        if self.kind == "boxes":
            return
        if self.grid_size < 1 or self.shaping.width % self.grid_size or self.shaping.height % self.grid_size:
            raise UserError(f"width ({self.shaping.width}) and height ({self.shaping.height}) must be "
                            f"divisible by grid_size ({self.grid_size})")

    @property
    def grid(self) -> tuple[int, int]:
        return self.shaping.width // self.grid_size, self.shaping.height // self.grid_size


@dataclass(frozen=True)
class _Task:
    number: int
    source: str
    stem: str  # output path without suffix, under data/
    boxes: tuple[Box, ...]


def scan_images(source: Path) -> list[tuple[Path, str]]:
    """Every image under `source` (recursively, sorted) with its relative path without suffix."""
    found = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and all(is_visible(Path(p)) for p in relative.parts):
            found.append((path, clean_relative(relative.with_suffix("").as_posix()).as_posix()))
    if not found:
        raise UserError("no images found: upload images with a same-name .txt of YOLO boxes beside each")
    return found


def read_all_labels(images: list[tuple[Path, str]], num_class: int, reporter: Reporter) -> list[list[Box]]:
    problems: list[str] = []
    labels = []
    missing = 0
    for path, stem in images:
        text = path.with_suffix(".txt")
        if not text.is_file():
            missing += 1
            problems.append(f"{stem}.txt: missing label file, the image has no objects")
            labels.append([])
            continue
        parsed = read_yolo_labels(text, num_class)
        problems.extend(f"{stem}.txt {p}" for p in parsed.problems)
        labels.append(parsed.boxes)
    boxes = sum(len(b) for b in labels)
    dropped = len(problems) - missing
    reporter.log(f"read {boxes} boxes from {len(images) - missing} label files ({dropped} lines dropped, "
                 f"{missing} label files missing)")
    log_list(reporter, "", problems)
    return labels


def _convert_one(task: _Task, params: DetectionParams, anchors: np.ndarray | None,
                 staging: str) -> tuple[int, str | None, int]:
    """Worker-side: shape the image, warp its boxes, write the target grids. -> (row, error, boxes kept)."""
    root = Path(staging)
    shaping = params.shaping
    try:
        shaped = convert_image(Path(task.source), root / f"{task.stem}.png", shaping.width, shaping.height,
                               shaping.mode, shaping.channel, shaping.max_pixels)
    except ImageRejected as exc:
        return task.number, str(exc), 0
    except Exception as exc:  # noqa: BLE001 - one odd file must never abort the whole dataset
        return task.number, f"conversion failed: {exc}", 0
    boxes = [b for b in (warp_box(box, shaped.fractions) for box in task.boxes) if b is not None]
    (root / f"{task.stem}_boxes.txt").write_text(format_boxes(boxes))
    if params.kind == "boxes":
        return task.number, None, len(boxes)
    grid_w, grid_h = params.grid
    if params.kind == "yolo":
        label, region = yolo_targets(boxes, anchors, grid_w, grid_h)
        save_grid_csv(root / f"{task.stem}_label.csv", label, "%d")
    else:
        label, region = centernet_targets(boxes, params.num_class, grid_w, grid_h)
        save_grid_csv(root / f"{task.stem}_label.csv", label, "%f")
    save_grid_csv(root / f"{task.stem}_region.csv", region, "%f")
    return task.number, None, len(boxes)


def build_detection_datasets(source: Path, workdir: Path, params: DetectionParams, outputs: list[OutputSpec],
                             shuffle: bool, seed: int, class_names: list[str],
                             reporter: Reporter) -> list[BuiltDataset]:
    """YOLO v2 sources: images with same-name .txt label files."""
    active_outputs(outputs)
    images = scan_images(source)
    reporter.log(f"found {len(images)} images")
    labels = read_all_labels(images, params.num_class, reporter)
    return convert_detection_items(images, labels, workdir, params, outputs, shuffle, seed, class_names, reporter)


def convert_detection_items(images: list[tuple[Path, str]], labels: list[list[Box]], workdir: Path,
                            params: DetectionParams, outputs: list[OutputSpec], shuffle: bool, seed: int,
                            class_names: list[str], reporter: Reporter) -> list[BuiltDataset]:
    """Shape every image (all cores), warp its boxes, write the targets, split into the outputs."""
    active_outputs(outputs)
    anchors = None
    if params.kind == "yolo":
        sizes = np.array([(b.w, b.h) for boxes in labels for b in boxes]).reshape(-1, 2)
        anchors = kmeans_anchors(sizes, params.num_anchor, seed=0)
        reporter.log("anchors (w, h): " + ", ".join(f"({w:.3f}, {h:.3f})" for w, h in anchors))
    staging = workdir / "converted"
    tasks = [_Task(i, str(path), f"data/{stem}", tuple(labels[i])) for i, (path, stem) in enumerate(images)]
    convert = functools.partial(_convert_one, params=params, anchors=anchors, staging=str(staging))
    kept: dict[int, int] = {}
    reporter.progress(0, len(tasks))
    for done, (number, error, box_count) in enumerate(parallel_map(convert, tasks, should_stop=reporter.should_stop), 1):
        if error is None:
            kept[number] = box_count
        else:
            reporter.log(f"skipped {images[number][1]}{images[number][0].suffix}: {error}")
        reporter.progress(done, len(tasks))
    check_stop(reporter)
    if params.kind == "centernet":
        empty = [n for n, count in kept.items() if count == 0]
        log_list(reporter, "left out (no valid box): ", [images[n][1] for n in empty], limit=50)
        for n in empty:
            del kept[n]
    numbers = sorted(kept)
    reporter.log(f"kept {len(numbers)} of {len(tasks)} images ({len(tasks) - len(numbers)} dropped)")
    if not numbers:
        raise UserError("no image could be used (see the lines above)")
    rows = []
    for n in numbers:
        stem = tasks[n].stem
        files = [f"{stem}.png", f"{stem}_boxes.txt"] if params.kind == "boxes" else [
            f"{stem}.png", f"{stem}_label.csv", f"{stem}_region.csv", f"{stem}_boxes.txt"]
        rows.append(Row([f"./{f}" for f in files], files))
    shaping = params.shaping
    image_column = Column("x", "image", "image", f"{shaping.channel},{shaping.height},{shaping.width}")
    if params.kind == "boxes":
        columns = [image_column, Column("y", "boxes", "boxes", "n,5", class_names)]
        return write_outputs(staging, workdir, outputs, rows, BOXES_HEADER, columns, class_names, shuffle, seed,
                             reporter)
    grid_w, grid_h = params.grid
    channels = params.num_anchor if params.kind == "yolo" else params.num_class
    columns = [image_column,
               Column("y", "label", "file", f"{channels},{grid_h},{grid_w}", class_names),
               Column("r", "region", "file", f"{1 if params.kind == 'centernet' else channels},{grid_h},{grid_w},4"),
               Column("#boxes", None, "boxes", "n,5", class_names)]
    return write_outputs(staging, workdir, outputs, rows, HEADER, columns, class_names, shuffle, seed, reporter)
