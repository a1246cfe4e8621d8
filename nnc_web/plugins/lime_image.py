"""Post-processing (XAI): LIME on superpixels for one image (`lime_image`, lime.png: the num_segments_2
most important segments, the rest grey 192) or every row of a CSV (`lime_image_batch`: `lime/0000/<row>.png`
and the input with a first column `lime`)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from nnc_web.plugins.postprocess import input_param, output_errors, output_param, record_outputs
from nnc_web.plugins.registry import Param, Plugin, register
from nnc_web.plugins.xai_image import (
    chosen_class,
    class_param,
    clicked_image,
    image_param,
    input_variable_param,
    label_variable_param,
    model_param,
    open_classifier,
    run_batch,
    save_single,
)

if TYPE_CHECKING:
    from nnc_web.engine.xai.classifier import ImageClassifier

METHOD = "LIME"


def explain_one(ctx, params: dict, classifier: ImageClassifier, unit, class_index: int, batch: int,
                progress: bool) -> tuple:
    """The picture, the segment weights and how many segments SLIC made, for one image."""
    from nnc_web.engine.xai.classifier import to_pixels
    from nnc_web.engine.xai.lime_image import lime_weights, superpixels, top_segments
    from nnc_web.engine.xai.memory import memory_errors
    from nnc_web.engine.xai.pictures import lime_picture

    pixels = to_pixels(unit)
    segments, note = superpixels(pixels, params["num_segments"])
    if note:
        ctx.log(f"NNC's SLIC settings gave too few segments on this image: {note} gave {segments.max() + 1}")
    samples = params["num_samples"]
    with memory_errors("the perturbed images do not fit in memory"):
        weights = lime_weights(classifier, unit, segments, class_index, samples, batch, reporter=ctx,
                               on_samples=(lambda done: ctx.progress(done, samples)) if progress else None)
    kept = top_segments(weights, params["num_segments_2"])
    return lime_picture(pixels, segments, kept), weights, kept


def _batch(classifier: ImageClassifier) -> int:
    from nnc_web.engine.xai.lime_image import default_batch
    from nnc_web.engine.xai.memory import fitted_batch

    return fitted_batch(default_batch(classifier.device), classifier.input_size, classifier.saved_bytes_per_pixel, False, classifier.device)


def run_single(ctx, params: dict) -> list:
    classifier = open_classifier(ctx, params, METHOD)
    image, _ = clicked_image(ctx, params, classifier)
    class_index = chosen_class(ctx, params, classifier, classifier.tensor(image))
    picture, weights, kept = explain_one(ctx, params, classifier, classifier.unit(image), class_index,
                                         _batch(classifier), progress=True)
    ctx.log(f"{len(weights)} segments, {params['num_samples']} samples; kept "
            + ", ".join(f"segment {k} ({weights[k]:+.4f})" for k in kept))
    return save_single(ctx, params, picture)


def run_batch_form(ctx, params: dict) -> list:
    from nnc_web.engine.xai.batch import BatchSpec, Explained, Item

    classifier = open_classifier(ctx, params, METHOD)
    batch = _batch(classifier)

    def explain(items: list[Item]) -> list[Explained]:
        return [Explained(explain_one(ctx, params, classifier, classifier.unit(item.image), item.class_index,
                                      batch, progress=False)[0]) for item in items]

    return run_batch(ctx, params, classifier, BatchSpec("lime"), explain)


def method_params() -> tuple[Param, ...]:
    return (Param("num_samples", "int", 1000, min=10, max=100_000, help="perturbed images the local model is fitted on"),
            Param("num_segments", "int", 10, min=2, max=10_000, help="superpixels to divide the image into (SLIC)"),
            Param("num_segments_2", "int", 3, min=1, max=10_000, help="segments to show (the most important)"))


def check(params: dict, suffix: str) -> dict[str, str]:
    errors = output_errors(params, suffix)
    if params.get("num_segments_2", 0) > params.get("num_segments", 0):
        errors["num_segments_2"] = "must be at most num_segments"
    return errors


DESCRIPTION = ("Divides the image into superpixels (SLIC), hides random halves of them (black) and fits a "
               "linear model of the class's score on which were shown; the segments with the largest weights "
               "are kept, the rest painted grey. The perturbed images go through the model in batches. "
               "\"Why Should I Trust You?\": Explaining the Predictions of Any Classifier (Ribeiro, Singh & "
               "Guestrin, 2016).")

SINGLE = register(Plugin(
    id="lime_image", kind="postprocess", group="XAI", title="LIME",
    description=DESCRIPTION,
    params=(model_param(), image_param(), class_param(), *method_params(), output_param("lime.png")),
    runner=run_single, completer=record_outputs, cross_check=lambda p: check(p, ".png"), uses_model=lambda p: True,
))

BATCH_PLUGIN = register(Plugin(
    id="lime_image_batch", kind="postprocess", group="XAI", title="LIME (batch)",
    description=DESCRIPTION + " Every row of the input, for the class its label variable names.",
    params=(input_param(help_text="the images to explain"), model_param(), input_variable_param(),
            label_variable_param(), *method_params(), output_param("lime.csv")),
    runner=run_batch_form, completer=record_outputs, cross_check=lambda p: check(p, ".csv"),
    uses_model=lambda p: True,
))
