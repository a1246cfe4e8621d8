"""Post-processing (XAI): Grad-CAM of one image (`grad_cam`, NNC's 50/50 jet overlay PNG) or of every
row of a CSV (`grad_cam_batch`: `gradcam/0000/<row>.png` pictures, the input with a first column
`gradcam` and a last column `gradcam_map` of float16 maps at the input size)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from nnc_web.plugins.postprocess import input_param, output_param, record_outputs
from nnc_web.plugins.registry import Plugin, register
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
    from nnc_web.engine.xai.classifier import ImageClassifier

BATCH = 16  # images per forward/backward pass of the batch form (fewer when memory is short)
METHOD = "Grad-CAM"


def _layer(ctx, params: dict, classifier: ImageClassifier):
    from nnc_web.engine.xai.gradcam import check_layer

    name, layer = classifier.layer(params["target_layer"])
    check_layer(name, layer)
    ctx.log(f"target layer {name}" + (" (the default for this model)" if name == classifier.default_layer else ""))
    return layer


def run_single(ctx, params: dict) -> list:
    from nnc_web.engine.xai.gradcam import grad_cam, upsample
    from nnc_web.engine.xai.memory import memory_errors
    from nnc_web.engine.xai.pictures import gradcam_overlay

    classifier = open_classifier(ctx, params, METHOD)
    layer = _layer(ctx, params, classifier)
    image, _ = clicked_image(ctx, params, classifier)
    inputs = classifier.tensor(image)
    class_index = chosen_class(ctx, params, classifier, inputs)
    with memory_errors("this image does not fit in memory"):
        maps = grad_cam(classifier.model, layer, inputs, [class_index])
    ctx.log(f"map of {maps.shape[1]} x {maps.shape[2]} cells, upsampled to {classifier.input_size} px")
    cam = upsample(maps, classifier.input_size)[0]
    return save_single(ctx, params, gradcam_overlay(classifier.pixels(image), cam))


def run_batch_form(ctx, params: dict) -> list:
    from nnc_web.engine.xai.batch import BatchSpec
    from nnc_web.engine.xai.gradcam import overlays
    from nnc_web.engine.xai.memory import fitted_batch

    classifier = open_classifier(ctx, params, METHOD)
    layer = _layer(ctx, params, classifier)
    chunk = fitted_batch(BATCH, classifier.input_size, classifier.saved_bytes_per_pixel, True, classifier.device)

    return run_batch(ctx, params, classifier, BatchSpec("gradcam", "gradcam_map", chunk),
                     lambda items: overlays(classifier, layer, items, draw_later=True))


def target_layer_param():
    return layer_param("target_layer", "default",
                       "the layer whose feature map is weighed (default: the model store's best-localising layer "
                       "of this backbone, e.g. blocks.5 of EfficientNet-Lite0, layer4 of a ResNet)")


DESCRIPTION = ("Shows which parts of an image drove a class score: the target layer's channels weighed by "
               "the mean gradient of the score, ReLU, as a jet heat map blended 50/50 with the image. Grad-CAM: "
               "Visual Explanations from Deep Networks via Gradient-based Localization (Selvaraju et al., 2017).")

SINGLE = register(Plugin(
    id="grad_cam", kind="postprocess", group="XAI", title="Grad-CAM",
    description=DESCRIPTION,
    params=(model_param(), image_param(), class_param(), target_layer_param(), output_param("grad_cam.png")),
    runner=run_single, completer=record_outputs, cross_check=png_check, uses_model=lambda p: True,
))

BATCH_PLUGIN = register(Plugin(
    id="grad_cam_batch", kind="postprocess", group="XAI", title="Grad-CAM (batch)",
    description=DESCRIPTION + " Every row of the input, for the class its label variable names.",
    params=(input_param(help_text="the images to explain"), model_param(), input_variable_param(),
            label_variable_param(), target_layer_param(), output_param("gradcam.csv")),
    runner=run_batch_form, completer=record_outputs, cross_check=csv_check, uses_model=lambda p: True,
))
