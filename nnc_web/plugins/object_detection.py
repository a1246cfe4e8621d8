"""Pre-processing: Object Detection from YOLO v2 format, as NNC's YOLO v2 and CenterNet creators."""
from __future__ import annotations

from pathlib import Path

from nnc_web.engine.detection_dataset import DetectionParams, build_detection_datasets
from nnc_web.engine.reporting import UserError
from nnc_web.plugins.common import (
    SOURCE_HELP,
    outputs_of,
    register_datasets,
    shaping_of,
    shaping_params,
    split_errors,
    split_params,
)
from nnc_web.plugins.registry import Param, Plugin, register
from nnc_web.plugins.sources import prepare_source

NAME_FILES = ("classes.txt", "obj.names", "classes.names")
CLASS_NAMES_HELP = ("comma-separated class names (optional: else a classes.txt or obj.names in the archive, "
                    "else 0, 1, ...)")


def class_names_for(source: Path, given: str | None, num_class: int) -> list[str]:
    if given:
        names = [n.strip() for n in given.split(",")]
    else:
        files = [p for name in NAME_FILES for p in source.rglob(name)]
        names = [n.strip() for n in files[0].read_text(errors="replace").splitlines() if n.strip()] if files else []
    if not names:
        return [str(i) for i in range(num_class)]
    if len(names) != num_class:
        raise UserError(f"{len(names)} class names for num_class {num_class}: give exactly one name per class")
    return names


def _grid_errors(params: dict) -> dict[str, str]:
    errors = split_errors(params)
    grid = params["grid_size"]
    for side in ("width", "height"):
        if params[side] % grid:
            errors[side] = f"must be divisible by grid_size ({grid})"
    return errors


def _runner(kind: str):
    def run(ctx, params: dict) -> list:
        source = prepare_source(ctx, Path(params["source"]))
        names = class_names_for(source, params.get("class_names"), params["num_class"])
        detection = DetectionParams(shaping_of(params), params["num_class"], params["grid_size"], kind,
                                    params.get("num_anchor") or 5)
        ctx.log(f"classes: {', '.join(names)}; grid {detection.grid[0]}x{detection.grid[1]}")
        return build_detection_datasets(source, ctx.path("build"), detection, outputs_of(params),
                                        params["shuffle"], params["seed"], names, ctx)

    return run


YOLO_DESCRIPTION = (
    "Creates NNC object-detection datasets (x:image, y:label, r:region) from images with a same-name .txt "
    "of YOLO v2 boxes ('class cx cy w h', normalised). Per image: a label grid (anchor, row, column) with "
    "the class or -1, and a region grid with the offset in the cell and the log of the box size in cells; "
    "anchors by k-means on the box sizes. Boxes follow the image through trimming and padding. "
    "YOLO9000: Better, Faster, Stronger (Redmon and Farhadi, 2017).")
CENTERNET_DESCRIPTION = (
    "Creates CenterNet datasets from YOLO v2 sources: per image a heat map per class with a Gaussian at "
    "each object's centre (CornerNet radius) and the offset/size region at the centre cell; images without "
    "any valid box are left out. Objects as Points (Zhou, Wang and Krahenbuhl, 2019).")

YOLO_PLUGIN = register(Plugin(
    id="object_detection_yolo_v2",
    kind="preprocess",
    title="Object Detection (from Yolo v2 format)",
    description=YOLO_DESCRIPTION,
    params=(
        Param("source", "file", required=True, label="Images and YOLO labels",
              help=f"{SOURCE_HELP} of images and YOLO v2 .txt files"),
        Param("num_class", "int", 10, min=1, max=10_000, label="Number of classes",
              help="number of classes (largest index + 1)"),
        Param("class_names", "text", None, label="Class names", help=CLASS_NAMES_HELP),
        *shaping_params(),
        Param("num_anchor", "int", 5, min=1, max=50, label="Number of anchors", help="number of anchors"),
        Param("grid_size", "int", 16, min=1, max=1024, label="Grid cell (px)",
              help="grid cell size in pixels; divides width and height"),
        *split_params(),
    ),
    runner=_runner("yolo"),
    completer=register_datasets,
    cross_check=_grid_errors,
))

CENTERNET_PLUGIN = register(Plugin(
    id="object_detection_centernet",
    kind="preprocess",
    title="Object Detection (for CenterNet from Yolo v2 format)",
    description=CENTERNET_DESCRIPTION,
    params=(
        Param("source", "file", required=True, label="Images and YOLO labels",
              help=f"{SOURCE_HELP} of images and YOLO v2 .txt files"),
        Param("num_class", "int", 4, min=1, max=10_000, label="Number of classes",
              help="number of classes (largest index + 1)"),
        Param("class_names", "text", None, label="Class names", help=CLASS_NAMES_HELP),
        *shaping_params(width=112, height=112, channel=1),
        Param("grid_size", "int", 4, min=1, max=1024, label="Output stride (px)",
              help="output stride in pixels; divides width and height"),
        *split_params("training_for_centernet", 90, "validation_for_centernet", 10),
    ),
    runner=_runner("centernet"),
    completer=register_datasets,
    cross_check=_grid_errors,
))
