"""Pre-processing: Image Classification dataset from one folder per class (NNC's built-in dialog)."""
from __future__ import annotations

from pathlib import Path

from nnc_web.engine.classification_dataset import build_classification_datasets
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

PARAMS = (
    Param("source", "file", required=True, label="Image archive",
          help=f"{SOURCE_HELP} with one folder of images per class"),
    *shaping_params(),
    *split_params(),
)


def run(ctx, params: dict) -> list:
    source = prepare_source(ctx, Path(params["source"]))
    return build_classification_datasets(source, ctx.path("build"), shaping_of(params), outputs_of(params),
                                         params["shuffle"], params["seed"], ctx)


PLUGIN = register(Plugin(
    id="image_classification",
    kind="preprocess",
    title="Image Classification (from class folders)",
    description="Creates NNC image-classification datasets (x:image, y:label) from an archive with one "
                "folder of images per class: shapes every image to width x height (trimming, padding or "
                "resize), converts channels, shuffles and splits into two datasets.",
    params=PARAMS,
    runner=run,
    completer=register_datasets,
    cross_check=split_errors,
))
