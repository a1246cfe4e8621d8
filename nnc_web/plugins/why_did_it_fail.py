"""Post-processing (XAI): "why did it fail". One job that, per class, picks the most and least activating
validation images and the misclassified ones (engine/xai/why.py) and writes each as the image beside its
Grad-CAM overlays for the true and the predicted class; the CSV lists them (class, kind, rank, row)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nnc_web.engine.analysis.table import find_columns, load_image, load_table
from nnc_web.engine.nnc_csv import write_csv
from nnc_web.engine.reporting import UserError, check_stop
from nnc_web.plugins.grad_cam import _layer, target_layer_param
from nnc_web.plugins.postprocess import (
    input_param,
    max_pixels,
    output_param,
    output_path,
    record_outputs,
    resolver_for,
)
from nnc_web.plugins.registry import Param, Plugin, register
from nnc_web.plugins.xai_image import (
    csv_check,
    input_variable_param,
    label_variable_param,
    model_param,
    open_classifier,
)

HEADER = ["why", "class", "kind", "rank", "index", "x", "y", "predicted", "score"]


def run(ctx, params: dict) -> list[Path]:
    from nnc_web.engine.xai.batch import Item, row_class
    from nnc_web.engine.xai.classifier import to_pixels
    from nnc_web.engine.xai.gradcam import overlays
    from nnc_web.engine.xai.pictures import save_png
    from nnc_web.engine.xai.why import pick_rows, side_by_side

    classifier = open_classifier(ctx, params, "Grad-CAM")
    if classifier.num_classes == 1:
        raise UserError("Why did it fail compares a classifier's classes; this model has one output (an anomaly "
                        "model's score): explain its images with Grad-CAM, LIME or SHAP, one image or the batch forms")
    layer = _layer(ctx, params, classifier)
    source: Path = params["input"]
    table = load_table(source)
    image_column = find_columns(table.header, params["input_variable"], table.name)[0]
    label_columns = find_columns(table.header, params["label_variable"], table.name)
    score_columns = find_columns(table.header, params["score_variable"], table.name)
    if len(score_columns) != classifier.num_classes:
        raise UserError(f"{params['score_variable']} has {len(score_columns)} columns; the model has "
                        f"{classifier.num_classes} classes")
    try:
        scores = np.array([[float(row[c]) for c in score_columns] for row in table.rows])
    except ValueError:
        raise UserError(f"{params['score_variable']} of {table.name} is not numeric") from None
    labels = np.array([row_class(row, label_columns, classifier) for row in table.rows])
    picks = pick_rows(labels, scores, params["per_class"])
    ctx.log(f"{len(picks)} images of {len(set(p.class_index for p in picks))} classes: the {params['per_class']} most and "
            f"least activating and up to {params['per_class']} misclassified per class")
    path = output_path(ctx, params, (".csv",))
    stem = path.name[:-len(".csv")]
    resolver = resolver_for(params, source)
    rows: list[list[str]] = []
    for done, pick in enumerate(picks, start=1):
        check_stop(ctx)
        cell = table.rows[pick.row][image_column]
        image = load_image(resolver, cell, max_pixels())
        classifier.fit_image(image, resolver.display(cell), ctx, quiet=True)
        # Grad-CAM for the true class and for the predicted one (the same when it was right).
        true_cam, predicted_cam = overlays(classifier, layer, [Item(pick.row, image, pick.class_index),
                                                              Item(pick.row, image, pick.predicted)])
        picture = side_by_side(to_pixels(classifier.unit(image)), true_cam.picture, predicted_cam.picture)
        name = f"{stem}/{pick.class_index}/{pick.kind}_{pick.rank}.png"
        save_png(picture, path.parent / name)
        rows.append([name, str(pick.class_index), pick.kind, str(pick.rank), str(pick.row + 1), cell,
                     str(int(labels[pick.row])), str(pick.predicted), f"{pick.score:.6g}"])
        ctx.progress(done, len(picks))
    write_csv(path, HEADER, rows)
    ctx.log(f"wrote {path.name}: each picture is the image, Grad-CAM of its true class, Grad-CAM of the predicted class")
    return [path]


PLUGIN = register(Plugin(
    id="why_did_it_fail", kind="postprocess", group="XAI", title="Why did it fail (Grad-CAM per class)",
    description=("Per class, the most and least activating images and the misclassified ones, each beside its "
                 "Grad-CAM overlays for the true and the predicted class (the MATLAB walkthrough of NNC's seeds)."),
    params=(input_param(help_text="the evaluation result (labels and scores)"), model_param(), input_variable_param(),
            label_variable_param(),
            Param("score_variable", "variable", "y'", required=True, help="the class scores of each row"),
            Param("per_class", "int", 3, min=1, max=1000, help="images of each kind per class"),
            target_layer_param(), output_param("why_did_it_fail.csv")),
    runner=run, completer=record_outputs, cross_check=csv_check, uses_model=lambda p: True,
))
