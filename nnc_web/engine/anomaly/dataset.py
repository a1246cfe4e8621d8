"""Anomaly-detection datasets from the MVTec AD folder layout:

    <category>/train/good/*.png                     normal training images
    <category>/test/good/*.png                      normal test images
    <category>/test/<defect>/*.png                  anomalous test images
    <category>/ground_truth/<defect>/<stem>_mask.png  their masks (optional)

gives `<prefix>train` (x:image, y:label, every row normal) and `<prefix>test` (x:image, y:label 0/1,
mask with 0/1 pixels). Normal test images get an all-0 mask; an anomalous image without a mask file
gets an empty mask cell, which leaves it out of pixel AUROC (but not of image AUROC).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nnc_web.engine.classification_dataset import ShapingParams, is_visible
from nnc_web.engine.dataset_outputs import BuiltDataset, OutputSpec, Row, write_outputs
from nnc_web.engine.imaging import IMAGE_SUFFIXES, ImageRejected, convert_image, open_checked
from nnc_web.engine.nnc_csv import Column
from nnc_web.engine.parallel import parallel_map
from nnc_web.engine.reporting import Reporter, UserError, check_stop, log_list
from nnc_web.engine.segmentation import shape_mask

CLASS_NAMES = ["normal", "anomalous"]


def find_category(source: Path) -> Path:
    """The folder with train/good (the archive itself, or one category folder inside it)."""
    candidates = [source, *[p for p in sorted(source.iterdir()) if p.is_dir() and is_visible(p)]]
    found = [c for c in candidates if (c / "train" / "good").is_dir()]
    if not found:
        raise UserError("no train/good/ folder found: use the MVTec AD layout (train/good, test/good, "
                        "test/<defect>, ground_truth/<defect>/<name>_mask.png)")
    if len(found) > 1:
        raise UserError(f"the archive holds several categories ({', '.join(p.name for p in found)}); "
                        f"create the datasets of one category at a time")
    return found[0]


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_visible(p) and p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass(frozen=True)
class _Task:
    number: int
    image: str
    mask: str | None  # None: all normal (good) or unknown (defect without a mask file)
    stem: str
    label: int


def _shape_mask(path: Path, shaping: ShapingParams) -> Image.Image:
    with open_checked(path, shaping.max_pixels) as image:
        mask = Image.fromarray((np.asarray(image.convert("L")) > 127).astype(np.uint8), "L")
    return shape_mask(mask, shaping.width, shaping.height, shaping.mode, fill=0)  # padding is normal


def _convert(task: _Task, shaping: ShapingParams, staging: str, with_masks: bool) -> tuple[int, str | None, bool]:
    """-> (task number, error, has a mask file)."""
    root = Path(staging)
    try:
        convert_image(Path(task.image), root / f"{task.stem}.png", shaping.width, shaping.height, shaping.mode,
                      shaping.channel, shaping.max_pixels)
        if not with_masks or (task.mask is None and task.label == 1):
            return task.number, None, False
        if task.mask is None:
            mask = Image.new("L", (shaping.width, shaping.height), 0)
        else:
            mask = _shape_mask(Path(task.mask), shaping)
        mask.save(root / f"{task.stem}_mask.png")
        return task.number, None, True
    except ImageRejected as exc:
        return task.number, str(exc), False


def _build(tasks: list[_Task], name: str, workdir: Path, shaping: ShapingParams, with_masks: bool,
           reporter: Reporter) -> list[BuiltDataset]:
    staging = workdir / "converted"
    convert = functools.partial(_convert, shaping=shaping, staging=str(staging), with_masks=with_masks)
    kept: dict[int, bool] = {}
    problems = []
    reporter.progress(0, len(tasks))
    for done, (number, error, has_mask) in enumerate(parallel_map(convert, tasks, reporter.should_stop), 1):
        if error:
            problems.append(f"skipped {tasks[number].stem}: {error}")
        else:
            kept[number] = has_mask
        reporter.progress(done, len(tasks))
    check_stop(reporter)
    log_list(reporter, "", problems)
    rows = []
    for number in sorted(kept):
        task = tasks[number]
        cells, files = [f"./{task.stem}.png", str(task.label)], [f"{task.stem}.png"]
        if with_masks:
            cells.append(f"./{task.stem}_mask.png" if kept[number] else "")
            files += [f"{task.stem}_mask.png"] if kept[number] else []
        rows.append(Row(cells, files))
    if not rows:
        raise UserError(f"no image of {name} could be used (see the lines above)")
    size = f"{shaping.channel},{shaping.height},{shaping.width}"
    columns = [Column("x", "image", "image", size), Column("y", "label", "label", "1", CLASS_NAMES)]
    header = ["x:image", "y:label;" + ";".join(CLASS_NAMES)]
    if with_masks:
        columns.append(Column("mask", "mask", "mask", f"1,{shaping.height},{shaping.width}", CLASS_NAMES))
        header.append("mask:mask;" + ";".join(CLASS_NAMES))
    return write_outputs(staging, workdir, [OutputSpec(name, 100)], rows, header, columns, CLASS_NAMES, False, 0,
                         reporter)


def build_anomaly_datasets(source: Path, workdir: Path, shaping: ShapingParams, prefix: str,
                           reporter: Reporter) -> list[BuiltDataset]:
    category = find_category(source)
    reporter.log(f"category folder: {category.name}")
    train = [_Task(i, str(p), None, f"train/good/{p.stem}", 0)
             for i, p in enumerate(_images(category / "train" / "good"))]
    reporter.log(f"--- {prefix}train: {len(train)} normal images")
    built = _build(train, f"{prefix}train", workdir / "train", shaping, False, reporter)
    test_root = category / "test"
    if not test_root.is_dir():
        reporter.log("no test/ folder: only the training dataset was made")
        return built
    tasks, missing = [], []
    for defect in sorted(p for p in test_root.iterdir() if p.is_dir() and is_visible(p)):
        for path in _images(defect):
            label = 0 if defect.name == "good" else 1
            mask = category / "ground_truth" / defect.name / f"{path.stem}_mask.png"
            if label and not mask.is_file():
                missing.append(f"{defect.name}/{path.name}")
            tasks.append(_Task(len(tasks), str(path), str(mask) if label and mask.is_file() else None,
                               f"test/{defect.name}/{path.stem}", label))
    anomalous = sum(t.label for t in tasks)
    reporter.log(f"--- {prefix}test: {len(tasks) - anomalous} normal, {anomalous} anomalous images")
    log_list(reporter, "no mask for ", missing, limit=20)
    if tasks:
        built += _build(tasks, f"{prefix}test", workdir / "test", shaping, True, reporter)
    return built
