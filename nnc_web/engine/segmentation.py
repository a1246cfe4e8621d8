"""Semantic segmentation datasets: image + class-id mask pairs, shaped together.

Masks are shaped with the image's geometry but nearest-neighbour, and padding becomes 255, the usual
"ignore" id. Ids that the label map does not know are counted, listed and set to 255 too.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nnc_web.engine.classification_dataset import ShapingParams
from nnc_web.engine.dataset_outputs import BuiltDataset, OutputSpec, Row, write_outputs
from nnc_web.engine.imaging import ImageRejected, convert_image, open_checked, shape_box
from nnc_web.engine.nnc_csv import Column
from nnc_web.engine.parallel import parallel_map
from nnc_web.engine.reporting import Reporter, UserError, check_stop, log_list
from nnc_web.engine.safe_paths import UnsafePathError, safe_join

IGNORE = 255


def load_id2label(path: Path) -> dict[int, str]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
        mapping = {int(k): str(v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError) as exc:
        raise UserError(f"{path.name} must map class ids to names, like {{\"0\": \"background\"}}: {exc}") from exc
    if not mapping or min(mapping) < 0 or max(mapping) >= IGNORE:
        raise UserError(f"{path.name}: class ids must be between 0 and {IGNORE - 1}")
    return mapping


def class_names_of(id2label: dict[int, str]) -> list[str]:
    """Names by id (gaps keep the id as the name), so a mask value indexes the list directly."""
    return [id2label.get(i, str(i)) for i in range(max(id2label) + 1)]


def read_pairs(listing: Path, folder: Path, label: str) -> tuple[list[tuple[Path, Path, str]], list[str]]:
    """(image, mask, output stem) for each entry of `[{"image": ..., "seg_map": ...}]`."""
    try:
        entries = json.loads(listing.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{label} is not valid JSON: {exc}") from exc
    if not isinstance(entries, list):
        raise UserError(f"{label} must be a list of {{\"image\": ..., \"seg_map\": ...}}")
    pairs, problems = [], []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("image", "seg_map")):
            problems.append(f"{label} entry {number}: needs 'image' and 'seg_map' paths")
            continue
        try:
            image, mask = safe_join(folder, entry["image"]), safe_join(folder, entry["seg_map"])
        except UnsafePathError as exc:
            problems.append(f"{label} entry {number}: {exc}")
            continue
        missing = [entry[k] for k, p in (("image", image), ("seg_map", mask)) if not p.is_file()]
        if missing:
            problems.append(f"{label} entry {number}: {', '.join(missing)} missing")
            continue
        pairs.append((image, mask, Path(entry["image"]).with_suffix("").as_posix()))
    return pairs, problems


def shape_mask(mask: Image.Image, width: int, height: int, mode: str, fill: int = IGNORE) -> Image.Image:
    """A mask shaped like its image (nearest neighbour); padding gets `fill`."""
    if mask.size == (width, height):
        return mask
    box = shape_box(mask.width, mask.height, width, height, mode)
    canvas = Image.new("L", (box.right - box.left, box.bottom - box.top), fill)
    canvas.paste(mask, (-box.left, -box.top))
    return canvas.resize((width, height), Image.Resampling.NEAREST)


@dataclass(frozen=True)
class _Task:
    number: int
    image: str
    mask: str
    stem: str


def _convert_pair(task: _Task, shaping: ShapingParams, known: frozenset[int],
                  staging: str) -> tuple[int, str | None, dict[int, int], list[int]]:
    """-> (row, error, pixels per class id, unknown ids found)."""
    root = Path(staging)
    try:
        with open_checked(Path(task.mask), shaping.max_pixels) as mask_image:
            if mask_image.mode not in ("L", "P", "I", "I;16", "1"):
                return task.number, f"mask must hold one class id per pixel (got mode {mask_image.mode})", {}, []
            ids = np.asarray(mask_image).astype(np.int64)
        with open_checked(Path(task.image), shaping.max_pixels) as image:
            if image.size != (ids.shape[1], ids.shape[0]):
                return task.number, f"image {image.size} and mask {ids.shape[::-1]} differ in size", {}, []
        convert_image(Path(task.image), root / f"{task.stem}.png", shaping.width, shaping.height, shaping.mode,
                      shaping.channel, shaping.max_pixels)
    except ImageRejected as exc:
        return task.number, str(exc), {}, []
    unknown = sorted(set(np.unique(ids).tolist()) - known - {IGNORE})
    if unknown:
        ids[np.isin(ids, unknown)] = IGNORE
    shaped = shape_mask(Image.fromarray(ids.astype(np.uint8), "L"), shaping.width, shaping.height, shaping.mode)
    target = root / f"{task.stem}_mask.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    shaped.save(target)
    values, counts = np.unique(np.asarray(shaped), return_counts=True)
    return task.number, None, {int(v): int(c) for v, c in zip(values, counts, strict=True)}, unknown


def convert_segmentation(pairs: list[tuple[Path, Path, str]], workdir: Path, shaping: ShapingParams,
                         id2label: dict[int, str], output: OutputSpec, shuffle: bool, seed: int,
                         reporter: Reporter) -> list[BuiltDataset]:
    staging = workdir / "converted"
    tasks = [_Task(i, str(image), str(mask), f"data/{stem}") for i, (image, mask, stem) in enumerate(pairs)]
    convert = functools.partial(_convert_pair, shaping=shaping, known=frozenset(id2label), staging=str(staging))
    kept, problems = [], []
    reporter.progress(0, len(tasks))
    for done, (number, error, _, unknown) in enumerate(parallel_map(convert, tasks, reporter.should_stop), 1):
        name = Path(pairs[number][1]).name
        if error:
            problems.append(f"skipped {pairs[number][2]}: {error}")
        else:
            kept.append(number)
            if unknown:
                problems.append(f"{name}: unknown class ids {', '.join(map(str, unknown))} set to {IGNORE} (ignore)")
        reporter.progress(done, len(tasks))
    check_stop(reporter)
    log_list(reporter, "", problems)
    reporter.log(f"kept {len(kept)} of {len(tasks)} pairs ({len(tasks) - len(kept)} dropped)")
    if not kept:
        raise UserError("no image/mask pair could be used (see the lines above)")
    names = class_names_of(id2label)
    rows = []
    for n in sorted(kept):
        stem = tasks[n].stem
        rows.append(Row([f"./{stem}.png", f"./{stem}_mask.png"], [f"{stem}.png", f"{stem}_mask.png"]))
    columns = [Column("x", "image", "image", f"{shaping.channel},{shaping.height},{shaping.width}"),
               Column("y", "label", "mask", f"1,{shaping.height},{shaping.width}", names)]
    header = ["x:image", "y:label;" + ";".join(names)]
    return write_outputs(staging, workdir, [output], rows, header, columns, names, shuffle, seed, reporter)
