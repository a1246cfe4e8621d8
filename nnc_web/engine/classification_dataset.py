"""Build NNC image-classification datasets from one-folder-per-class sources."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from nnc_web.engine.dataset_outputs import (  # noqa: F401 - re-exported for plugins
    BuiltDataset,
    OutputSpec,
    Row,
    active_outputs,
    write_outputs,
)
from nnc_web.engine.imaging import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, MODES, ImageRejected, convert_image
from nnc_web.engine.nnc_csv import Column, HeaderCell, format_header_cell
from nnc_web.engine.parallel import parallel_map
from nnc_web.engine.reporting import Reporter, UserError, check_stop, log_list

_IGNORED_NAMES = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class ShapingParams:
    width: int
    height: int
    mode: str = "trimming"
    channel: int = 3
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger source images are skipped (decompression bombs)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"mode must be one of {', '.join(MODES)}")
        if self.channel not in (1, 3):
            raise UserError("channel must be 1 or 3")
        if not (1 <= self.width <= 4096 and 1 <= self.height <= 4096):
            raise UserError("width and height must be between 1 and 4096")


@dataclass
class SourceScan:
    classes: list[str]
    items: list[tuple[Path, int]]  # (file, class index) in class then file-name order
    skipped: list[str] = field(default_factory=list)


def is_visible(path: Path) -> bool:
    """Not a hidden file or an OS artefact (__MACOSX, .DS_Store, Thumbs.db)."""
    return path.name not in _IGNORED_NAMES and not path.name.startswith(".")


def find_class_root(source: Path) -> Path:
    """The folder holding the class folders; a single wrapping folder around them is tolerated."""
    root = source
    for _ in range(3):
        entries = [p for p in root.iterdir() if is_visible(p)]
        folders = [p for p in entries if p.is_dir()]
        if len(folders) == 1 and not any(p.is_file() for p in entries):
            inner = [p for p in folders[0].iterdir() if is_visible(p)]
            if any(p.is_dir() for p in inner):
                root = folders[0]
                continue
        break
    return root


def scan_class_folders(source: Path, classes: list[str] | None = None) -> SourceScan:
    """Classes = immediate subfolders sorted by name, files directly inside, sorted by name.

    A folder gets a label index only when it holds at least one image file, so indices stay
    contiguous (NNC's rule). With `classes` given (several splits sharing one label index), the
    indices are positions in that list.
    """
    root = find_class_root(source)
    skipped: list[str] = []
    fixed = classes
    found: list[str] = []
    items: list[tuple[Path, int]] = []
    for entry in sorted(p for p in root.iterdir() if is_visible(p)):
        if not entry.is_dir():
            skipped.append(f"{entry.name}: not inside a class folder")
            continue
        images = []
        for file in sorted(p for p in entry.iterdir() if is_visible(p)):
            if file.is_dir():
                skipped.append(f"{entry.name}/{file.name}/: nested folders are not read")
            elif file.suffix.lower() in IMAGE_SUFFIXES:
                images.append(file)
            else:
                skipped.append(f"{entry.name}/{file.name}: not an image file")
        if images and fixed is not None and entry.name not in fixed:
            skipped.append(f"{entry.name}/: not one of the classes {', '.join(fixed)}")
        elif images:
            index = fixed.index(entry.name) if fixed is not None else len(found)
            items.extend((file, index) for file in images)
            found.append(entry.name)
    if not items:
        raise UserError(
            "no images found: the archive must hold one folder per class with images inside "
            f"({', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES)})"
        )
    return SourceScan(classes=list(fixed) if fixed is not None else found, items=items, skipped=skipped)


def _convert_one(task: tuple[int, str, str], shaping: ShapingParams) -> tuple[int, str | None]:
    """Worker-side: convert one image; returns (row number, error or None)."""
    number, source, dest = task
    try:
        convert_image(Path(source), Path(dest), shaping.width, shaping.height, shaping.mode,
                      shaping.channel, shaping.max_pixels)
        return number, None
    except ImageRejected as exc:
        return number, str(exc)
    except Exception as exc:  # noqa: BLE001 - one odd file must never abort the whole dataset
        return number, f"conversion failed: {exc}"


def _output_names(scan: SourceScan) -> list[str]:
    """`<class>/<stem>.png` per item, made unique when two sources share a stem."""
    used: set[str] = set()
    names = []
    for file, label in scan.items:
        base = f"{scan.classes[label]}/{file.stem}"
        name, counter = f"{base}.png", 1
        while name.lower() in used:
            name, counter = f"{base}_{counter}.png", counter + 1
        used.add(name.lower())
        names.append(name)
    return names


def build_classification_datasets(
    source: Path,
    workdir: Path,
    shaping: ShapingParams,
    outputs: list[OutputSpec],
    shuffle: bool,
    seed: int,
    reporter: Reporter,
    classes: list[str] | None = None,
) -> list[BuiltDataset]:
    """Convert every image once (on all cores), then split the kept rows between the outputs."""
    active_outputs(outputs)  # fail before any work when no output would be written
    scan = scan_class_folders(source, classes)
    reporter.log(f"found {len(scan.items)} images in {len(scan.classes)} classes: {', '.join(scan.classes)}")
    log_list(reporter, "skipped ", scan.skipped)
    staging = workdir / "converted"
    names = _output_names(scan)
    tasks = [(i, str(file), str(staging / names[i])) for i, (file, _) in enumerate(scan.items)]
    convert = functools.partial(_convert_one, shaping=shaping)
    kept: list[int] = []
    done = 0
    total = len(tasks)
    reporter.progress(0, total)
    for number, error in parallel_map(convert, tasks, should_stop=reporter.should_stop):
        done += 1
        if error is None:
            kept.append(number)
        else:
            reporter.log(f"skipped {scan.classes[scan.items[number][1]]}/{scan.items[number][0].name}: {error}")
        reporter.progress(done, total)
    check_stop(reporter)
    kept.sort()
    reporter.log(f"converted {len(kept)} of {total} images ({total - len(kept)} skipped)")
    if not kept:
        raise UserError("none of the images could be converted")
    # `;` separates class names in the header and `,` cells: a folder `a;b` must stay one class.
    label_cell = HeaderCell("y", label="label", classes=tuple(re.sub(r"[;,]", "_", c) for c in scan.classes))
    header = [format_header_cell(HeaderCell("x", label="image")), format_header_cell(label_cell)]
    shape = f"{shaping.channel},{shaping.height},{shaping.width}"
    columns = [Column("x", "image", "image", shape), Column("y", "label", "label", "1", list(scan.classes))]
    rows = [Row([f"./{names[n]}", str(scan.items[n][1])], [names[n]]) for n in kept]
    return write_outputs(staging, workdir, outputs, rows, header, columns, list(scan.classes), shuffle, seed,
                         reporter)
