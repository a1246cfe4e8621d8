"""What the image explanation plugins share (Grad-CAM, LIME, SHAP, SmoothGrad): their parameters, the
classifier on the job's device, the clicked image and its class, and the batch form over a CSV.

From an image cell, the browser prefills `image` with the cell; `class_index` stays -1, the class the
model predicts for the image (the true class is the row's label, which the form may offer instead)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from nnc_web.engine.analysis.table import CellResolver, load_image
from nnc_web.engine.model_store import BACKBONES, GRADCAM_LAYERS
from nnc_web.plugins.context import Workspace
from nnc_web.plugins.postprocess import max_pixels, output_errors, output_path, resolver_for
from nnc_web.plugins.registry import Param

if TYPE_CHECKING:
    import torch

    from nnc_web.engine.xai.batch import BatchSpec, Explained, Item
    from nnc_web.engine.xai.classifier import ImageClassifier

PREDICTED = -1


def model_param() -> Param:
    return Param("model", "model", "model", required=True, help="this run's model bundle (an image classifier)")


def image_param() -> Param:
    return Param("image", "image", None, required=True,
                 help="the image to explain (prefilled with the clicked image cell)")


def class_param() -> Param:
    return Param("class_index", "int", PREDICTED, min=PREDICTED, max=100_000,
                 help="the class to explain (-1: the class the model predicts for this image)")


def input_variable_param() -> Param:
    return Param("input_variable", "variable", "x", required=True, help="the variable of the images")


def label_variable_param() -> Param:
    return Param("label_variable", "variable", "y", required=True,
                 help="each row's class: its value used as a class index (a vector such as y' gives its "
                      "largest element: the predicted class)")


# The layers a model may offer: the classifiers' Grad-CAM layers, then those anomaly models take features from.
LAYERS = tuple(dict.fromkeys((*GRADCAM_LAYERS, *(name for b in BACKBONES.values() for name in b.feature_layers))))


def layer_param(name: str, default: str, help_text: str) -> Param:
    return Param(name, "choice", default, choices=(default, *LAYERS), help=help_text)


def open_classifier(ctx, params: dict, method: str) -> ImageClassifier:
    from nnc_web.engine.training.trainer import resolve_device
    from nnc_web.engine.xai.classifier import load_image_classifier

    device = resolve_device("auto")
    classifier = load_image_classifier(Path(params["model"]), device, method)
    what = (f"classifier ({classifier.num_classes} classes" if classifier.num_classes > 1 else
            f"{classifier.manifest.get('architecture')} model (one output: {classifier.class_label(0)}")
    ctx.log(f"{method} of a {classifier.backbone_id or classifier.manifest.get('architecture')} {what}, "
            f"{classifier.input_size} px) on {device}")
    return classifier


def cell_resolver(params: dict) -> CellResolver:
    """The clicked cell is read as the table showed it: inside the run's, dataset's or user's folders."""
    workspace: Workspace = params["_workspace"]
    return CellResolver(workspace.folder, list(workspace.roots))


def clicked_image(ctx, params: dict, classifier: ImageClassifier) -> tuple[Image.Image, str]:
    resolver = cell_resolver(params)
    image = load_image(resolver, params["image"], max_pixels())
    shown = resolver.display(params["image"])
    classifier.fit_image(image, shown, ctx)
    return image, shown


def chosen_class(ctx, params: dict, classifier: ImageClassifier, inputs: torch.Tensor) -> int:
    """`class_index`, or (-1) the class the model predicts; logged with the model's score of it."""
    import torch

    with torch.no_grad():
        outputs = classifier.model(inputs)
    if classifier.num_classes == 1:  # one score (an anomaly model's): its value, no softmax of one
        class_index = classifier.check_class(0 if params["class_index"] == PREDICTED else params["class_index"])
        ctx.log(f"the model's {classifier.class_names[0] if classifier.class_names else 'score'} is "
                f"{float(outputs[0, 0]):.4f}; explaining it")
        return class_index
    scores = torch.softmax(outputs, dim=1)[0]
    predicted = int(scores.argmax())
    wanted = params["class_index"]
    class_index = predicted if wanted == PREDICTED else classifier.check_class(wanted)
    ctx.log(f"the model predicts class {classifier.class_label(predicted)} ({float(scores[predicted]):.3f}); "
            f"explaining class {classifier.class_label(class_index)} (score {float(scores[class_index]):.3f})")
    return class_index


def save_single(ctx, params: dict, picture) -> list[Path]:
    from nnc_web.engine.xai.pictures import save_png

    path = output_path(ctx, params, (".png",))
    save_png(picture, path)
    ctx.log(f"wrote {path.name} ({picture.shape[1]} x {picture.shape[0]})")
    return [path]


def run_batch(ctx, params: dict, classifier: ImageClassifier, spec: BatchSpec,
              explain: Callable[[list[Item]], list[Explained]]) -> list[Path]:
    from nnc_web.engine.xai.batch import explain_table

    path = output_path(ctx, params, (".csv",))
    done = explain_table(ctx, params["input"], resolver_for(params, params["input"]), params["input_variable"],
                         params["label_variable"], classifier, path, spec, explain, max_pixels())
    ctx.log(f"wrote {path.name}: {done} pictures in {path.name[:-4]}/, the input with a first column {spec.column}"
            + (f" and a last column {spec.raw_column} (float16 maps)" if spec.raw_column else ""))
    return [path]


def png_check(params: dict) -> dict[str, str]:
    return output_errors(params, ".png")


def csv_check(params: dict) -> dict[str, str]:
    return output_errors(params, ".csv")
