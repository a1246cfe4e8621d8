"""Post-processing (XAI): SHAP (expected gradients) of one image against a background table (`shap_image`,
shap.png: red where the pixels raise the class score, blue where they lower it, over the image in grey)
or of every row of a CSV, which is also the background (`shap_image_batch`: `shap/0000/<row>.png` and
the input with a first column `shap`)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from nnc_web.engine.analysis.table import find_columns, is_image_cell, load_image, load_table
from nnc_web.engine.errors import UserError
from nnc_web.plugins.postprocess import input_param, max_pixels, output_param, record_outputs, resolver_for
from nnc_web.plugins.registry import Param, Plugin, register
from nnc_web.plugins.xai_image import (
    chosen_class,
    class_param,
    clicked_image,
    csv_check,
    image_param,
    input_variable_param,
    label_variable_param,
    layer_param,
    model_param,
    open_classifier,
    png_check,
    run_batch,
    save_single,
)

if TYPE_CHECKING:
    import torch

    from nnc_web.engine.xai.classifier import ImageClassifier

METHOD = "SHAP"
SEED = 0
MAX_BACKGROUND = 100  # background images kept in memory (drawn once, seeded, from the input's rows)


def background(ctx, params: dict, classifier: ImageClassifier, variable: str | None) -> torch.Tensor:
    """Up to MAX_BACKGROUND (and num_samples) images of the input table, in a seeded random order."""
    import torch

    table = load_table(params["input"])
    if variable is not None:
        column = find_columns(table.header, variable, table.name)[0]
    else:
        columns = [i for i, cell in enumerate(table.rows[0] if table.rows else []) if is_image_cell(cell)]
        if not columns:
            raise UserError(f"no image column in {table.name} to take the background from")
        column = columns[0]
    resolver = resolver_for(params, params["input"])
    wanted = min(MAX_BACKGROUND, params["num_samples"])
    units = []
    for index in np.random.default_rng(SEED).permutation(len(table.rows)):
        try:
            units.append(classifier.unit(load_image(resolver, table.rows[index][column], max_pixels())))
        except UserError:
            continue  # an unreadable background image is one fewer to draw from
        if len(units) == wanted:
            break
    if not units:
        raise UserError(f"no readable image in {table.name} for the background")
    ctx.log(f"background: {len(units)} images of {table.name}")
    return torch.stack(units)


def _layer(ctx, params: dict, classifier: ImageClassifier):
    if params["interim_layer"] == "input":
        return None
    name, layer = classifier.layer(params["interim_layer"])
    ctx.log(f"values at layer {name}, summed over its channels and upsampled")
    return layer


def _values(ctx, params: dict, classifier: ImageClassifier, unit: torch.Tensor, base: torch.Tensor,
            class_index: int, layer, progress: bool = False) -> np.ndarray:
    from nnc_web.engine.xai.memory import memory_errors
    from nnc_web.engine.xai.shap_image import expected_gradients

    samples = params["num_samples"]
    with memory_errors("lower batch_size"):
        return expected_gradients(classifier, unit, base, class_index, samples, params["batch_size"], seed=SEED,
                                  layer=layer, reporter=ctx,
                                  on_samples=(lambda done: ctx.progress(done, samples)) if progress else None)


def _prepare(ctx, params: dict, variable: str | None) -> tuple[ImageClassifier, torch.Tensor, object]:
    from nnc_web.engine.xai.memory import check_batch

    classifier = open_classifier(ctx, params, METHOD)
    check_batch(params["batch_size"], classifier.input_size, classifier.saved_bytes_per_pixel, True,
                classifier.device)
    layer = _layer(ctx, params, classifier)
    return classifier, background(ctx, params, classifier, variable), layer


def run_single(ctx, params: dict) -> list:
    from nnc_web.engine.xai.classifier import to_pixels
    from nnc_web.engine.xai.pictures import shap_picture

    classifier, base, layer = _prepare(ctx, params, None)
    image, _ = clicked_image(ctx, params, classifier)
    unit = classifier.unit(image)
    class_index = chosen_class(ctx, params, classifier, classifier.tensor(image))
    values = _values(ctx, params, classifier, unit, base, class_index, layer, progress=True)
    ctx.log(f"{params['num_samples']} samples: sum of the values {values.sum():+.4f}, positive "
            f"{values[values > 0].sum():+.4f}, negative {values[values < 0].sum():+.4f}")
    return save_single(ctx, params, shap_picture(to_pixels(unit), values))


def run_batch_form(ctx, params: dict) -> list:
    from nnc_web.engine.xai.batch import BatchSpec, Explained, Item
    from nnc_web.engine.xai.classifier import to_pixels
    from nnc_web.engine.xai.pictures import shap_picture

    classifier, base, layer = _prepare(ctx, params, params["input_variable"])

    def explain(items: list[Item]) -> list[Explained]:
        results = []
        for item in items:
            unit = classifier.unit(item.image)
            values = _values(ctx, params, classifier, unit, base, item.class_index, layer)
            results.append(Explained(shap_picture(to_pixels(unit), values)))
        return results

    return run_batch(ctx, params, classifier, BatchSpec("shap"), explain)


def method_params() -> tuple[Param, ...]:
    return (Param("num_samples", "int", 100, min=1, max=100_000,
                  help="background draws (image, blend factor) the values are averaged over"),
            Param("batch_size", "int", 50, min=1, max=4096, help="draws per forward/backward pass"),
            layer_param("interim_layer", "input", "explain the input pixels (input) or a layer's activations"))


DESCRIPTION = ("SHAP values of the pixels as expected gradients: the gradient of the class score at random "
               "blends between the image and background images, times their difference, averaged; red "
               "raises the score, blue lowers it. Seeded: the same run gives the same picture. A Unified "
               "Approach to Interpreting Model Predictions (Lundberg & Lee, 2017).")

SINGLE = register(Plugin(
    id="shap_image", kind="postprocess", group="XAI", title="SHAP",
    description=DESCRIPTION,
    params=(image_param(), input_param(help_text="the background images (a table with an image column)"),
            model_param(), class_param(), *method_params(), output_param("shap.png")),
    runner=run_single, completer=record_outputs, cross_check=png_check, uses_model=lambda p: True,
))

BATCH_PLUGIN = register(Plugin(
    id="shap_image_batch", kind="postprocess", group="XAI", title="SHAP (batch)",
    description=DESCRIPTION + " Every row of the input (also the background), for the class its label "
                              "variable names.",
    params=(input_param(help_text="the images to explain, also the background"), model_param(),
            input_variable_param(), label_variable_param(), *method_params(), output_param("shap.csv")),
    runner=run_batch_form, completer=record_outputs, cross_check=csv_check, uses_model=lambda p: True,
))
