"""Parameters and checks shared by the dataset-creation plugins (NNC's shaping and split options)."""
from __future__ import annotations

from django.conf import settings

from nnc_web.engine.classification_dataset import OutputSpec, ShapingParams
from nnc_web.plugins.registry import Param, dataset_name_errors

SOURCE_HELP = "archive (.zip/.tar/.tar.gz/.tgz)"


def shaping_params(width: int = 256, height: int = 256, channel: int = 3, mode: str = "trimming") -> tuple[Param, ...]:
    return (
        Param("mode", "choice", mode, choices=("trimming", "padding", "resize"), label="Fit to size",
              help="trimming: centre-crop to the target aspect; padding: letterbox with black; resize: stretch"),
        Param("channel", "int", channel, choices=(1, 3), label="Colour channels", help="1 = grayscale, 3 = RGB"),
        Param("width", "int", width, min=1, max=4096, label="Width", help="output width in pixels"),
        Param("height", "int", height, min=1, max=4096, label="Height", help="output height in pixels"),
    )


def split_params(file1: str = "train", ratio1: int = 100, file2: str = "test", ratio2: int = 0) -> tuple[Param, ...]:
    return (
        Param("shuffle", "bool", True, label="Shuffle", help="shuffle rows before splitting"),
        Param("seed", "int", 0, min=0, max=2**31 - 1, label="Random seed",
              help="shuffle seed (the same seed gives the same split)"),
        Param("file1", "text", file1, required=True, label="Training data name", help="name of the first dataset"),
        Param("ratio1", "int", ratio1, min=0, max=100, label="Training data ratio (%)",
              help="percent of the rows in the first dataset"),
        Param("file2", "text", file2, label="Validation data name", help="name of the second dataset"),
        Param("ratio2", "int", ratio2, min=0, max=100, label="Validation data ratio (%)",
              help="percent of the rows in the second dataset"),
    )


def split_errors(params: dict) -> dict[str, str]:
    errors = dataset_name_errors(params, "file1", *(["file2"] if params.get("ratio2") else []))
    if params["ratio1"] + params["ratio2"] > 100:
        errors["ratio2"] = "ratio1 + ratio2 must be at most 100"
    elif params["ratio1"] + params["ratio2"] == 0:
        errors["ratio1"] = "at least one ratio must be above 0"
    if params.get("ratio2") and params.get("file1") == params.get("file2"):
        errors["file2"] = "must differ from file1"
    return errors


def outputs_of(params: dict) -> list[OutputSpec]:
    outputs = [OutputSpec(params["file1"], params["ratio1"])]
    if params["ratio2"]:
        outputs.append(OutputSpec(params["file2"], params["ratio2"]))
    return outputs


def shaping_of(params: dict) -> ShapingParams:
    return ShapingParams(params["width"], params["height"], params["mode"], params["channel"],
                         max_pixels=settings.NNC_MAX_IMAGE_PIXELS)


def register_datasets(job, built: list) -> None:
    """The completer of every dataset-creation plugin."""
    from nnc_web.datasets.services import register_built_datasets

    register_built_datasets(job, built)
