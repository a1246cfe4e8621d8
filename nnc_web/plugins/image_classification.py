"""Pre-processing: Image Classification dataset from one folder per class (NNC's built-in dialog)."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings

from nnc_web.engine.classification_dataset import (
    OutputSpec,
    ShapingParams,
    build_classification_datasets,
)
from nnc_web.plugins.registry import Param, Plugin, dataset_name_errors, register
from nnc_web.plugins.sources import prepare_source

PARAMS = (
    Param("source", "file", required=True,
          help="archive (.zip/.tar/.tar.gz/.tgz) with one folder of images per class"),
    Param("mode", "choice", "trimming", choices=("trimming", "padding", "resize"),
          help="trimming: centre-crop to the target aspect; padding: letterbox with black; resize: stretch"),
    Param("channel", "int", 3, choices=(1, 3), help="1 = grayscale, 3 = RGB"),
    Param("width", "int", 256, min=1, max=4096, help="output width in pixels"),
    Param("height", "int", 256, min=1, max=4096, help="output height in pixels"),
    Param("shuffle", "bool", True, help="shuffle rows before splitting"),
    Param("seed", "int", 0, min=0, max=2**31 - 1, help="shuffle seed (the same seed gives the same split)"),
    Param("file1", "text", "train", required=True, help="name of the first dataset"),
    Param("ratio1", "int", 100, min=0, max=100, help="percent of the images in the first dataset"),
    Param("file2", "text", "test", help="name of the second dataset"),
    Param("ratio2", "int", 0, min=0, max=100, help="percent of the images in the second dataset"),
)


def _cross_check(params: dict) -> dict[str, str]:
    errors = dataset_name_errors(params, "file1", *(["file2"] if params.get("ratio2") else []))
    if params["ratio1"] + params["ratio2"] > 100:
        errors["ratio2"] = "ratio1 + ratio2 must be at most 100"
    elif params["ratio1"] + params["ratio2"] == 0:
        errors["ratio1"] = "at least one ratio must be above 0"
    if params.get("ratio2") and params.get("file1") == params.get("file2"):
        errors["file2"] = "must differ from file1"
    return errors


def run(ctx, params: dict) -> list:
    source = prepare_source(ctx, Path(params["source"]))
    outputs = [OutputSpec(params["file1"], params["ratio1"])]
    if params["ratio2"]:
        outputs.append(OutputSpec(params["file2"], params["ratio2"]))
    shaping = ShapingParams(params["width"], params["height"], params["mode"], params["channel"],
                            max_pixels=settings.NNC_MAX_IMAGE_PIXELS)
    return build_classification_datasets(source, ctx.path("build"), shaping, outputs, params["shuffle"],
                                         params["seed"], ctx)


def _complete(job, built: list) -> None:
    from nnc_web.datasets.services import register_built_datasets

    register_built_datasets(job, built)


PLUGIN = register(Plugin(
    id="image_classification",
    kind="preprocess",
    title="Image Classification (from class folders)",
    description="Creates NNC image-classification datasets (x:image, y:label) from an archive with one "
                "folder of images per class: shapes every image to width x height (trimming, padding or "
                "resize), converts channels, shuffles and splits into two datasets.",
    params=PARAMS,
    runner=run,
    completer=_complete,
    cross_check=_cross_check,
))
