"""Post-processing (XAI): SmoothGrad of one image (`smoothgrad`, smoothgrad.png: a grey map of the gradient
magnitude) or of every row of a CSV (`smoothgrad_batch`: `smoothgrad/0000/<row>.png` and the input
with a first column `SmoothGrad`), as sony/nnc-plugin has them."""
from __future__ import annotations

from typing import TYPE_CHECKING

from nnc_web.plugins.postprocess import input_param, output_param, record_outputs
from nnc_web.plugins.registry import Param, Plugin, register
from nnc_web.plugins.xai_image import (
    chosen_class,
    class_param,
    clicked_image,
    csv_check,
    image_param,
    input_variable_param,
    label_variable_param,
    model_param,
    open_classifier,
    png_check,
    run_batch,
    save_single,
)

if TYPE_CHECKING:
    from nnc_web.engine.xai.classifier import ImageClassifier

METHOD = "SmoothGrad"
BATCH = 32  # noisy copies per forward/backward pass (fewer when memory is short)
SEED = 0


def _map(ctx, params: dict, classifier: ImageClassifier, image, class_index: int, batch: int):
    from nnc_web.engine.xai.memory import memory_errors
    from nnc_web.engine.xai.pictures import smoothgrad_picture
    from nnc_web.engine.xai.smoothgrad import smoothgrad

    with memory_errors("the noisy copies do not fit in memory"):
        values = smoothgrad(classifier, classifier.tensor(image), class_index, params["noise_level"],
                            params["num_samples"], batch, seed=SEED, reporter=ctx)
    return smoothgrad_picture(values)


def _batch(params: dict, classifier: ImageClassifier) -> int:
    from nnc_web.engine.xai.memory import fitted_batch

    return fitted_batch(min(BATCH, params["num_samples"]), classifier.input_size, classifier.saved_bytes_per_pixel,
                        True, classifier.device)


def run_single(ctx, params: dict) -> list:
    classifier = open_classifier(ctx, params, METHOD)
    image, _ = clicked_image(ctx, params, classifier)
    class_index = chosen_class(ctx, params, classifier, classifier.tensor(image))
    ctx.log(f"{params['num_samples']} noisy copies, noise {params['noise_level']:g} of the image's range")
    return save_single(ctx, params, _map(ctx, params, classifier, image, class_index, _batch(params, classifier)))


def run_batch_form(ctx, params: dict) -> list:
    from nnc_web.engine.xai.batch import BatchSpec, Explained, Item

    classifier = open_classifier(ctx, params, METHOD)
    batch = _batch(params, classifier)

    def explain(items: list[Item]) -> list[Explained]:
        return [Explained(_map(ctx, params, classifier, item.image, item.class_index, batch)) for item in items]

    return run_batch(ctx, params, classifier, BatchSpec("SmoothGrad"), explain)


def method_params() -> tuple[Param, ...]:
    return (Param("noise_level", "float", 0.15, min=0.0, max=1.0,
                  help="noise std as a fraction of the image's value range (max - min)"),
            Param("num_samples", "int", 25, min=1, max=10_000, help="noisy copies averaged"))


DESCRIPTION = ("The gradient of the class score with respect to the pixels, squared and averaged over "
               "noisy copies of the image (less speckle than one gradient), as a grey map. SmoothGrad: "
               "removing noise by adding noise (Smilkov et al., 2017).")

SINGLE = register(Plugin(
    id="smoothgrad", kind="postprocess", group="XAI", title="SmoothGrad",
    description=DESCRIPTION,
    params=(model_param(), image_param(), class_param(), *method_params(), output_param("smoothgrad.png")),
    runner=run_single, completer=record_outputs, cross_check=png_check, uses_model=lambda p: True,
))

BATCH_PLUGIN = register(Plugin(
    id="smoothgrad_batch", kind="postprocess", group="XAI", title="SmoothGrad (batch)",
    description=DESCRIPTION + " Every row of the input, for the class its label variable names.",
    params=(input_param(help_text="the images to explain"), model_param(), input_variable_param(),
            label_variable_param(), *method_params(), output_param("smoothgrad.csv")),
    runner=run_batch_form, completer=record_outputs, cross_check=csv_check, uses_model=lambda p: True,
))
