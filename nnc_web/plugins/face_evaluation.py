"""Post-processing: Face evaluation (NNC's Fairness plugin) - the skin tone (ITA) of each face image."""
from __future__ import annotations

import json

from nnc_web.engine.analysis.table import load_table
from nnc_web.engine.nnc_csv import write_csv
from nnc_web.plugins.postprocess import (
    input_param,
    max_pixels,
    output_errors,
    output_param,
    output_path,
    record_outputs,
    reserve_beside,
    resolver_for,
)
from nnc_web.plugins.registry import Plugin, register

HEADER = ["x:image", "ITA", "skin_tone"]


def run(ctx, params: dict) -> list:
    from nnc_web.engine.analysis.ita import evaluate_faces, ita_histogram_item

    table = load_table(params["input"])
    rows = evaluate_faces(table, resolver_for(params, params["input"]), ctx, max_pixels())
    path = output_path(ctx, params, (".csv",))
    write_csv(path, HEADER, rows)
    itas: list[float | str] = []  # the histogram also counts the images without exactly one face
    for row in rows:
        try:
            itas.append(float(row[1]))
        except ValueError:
            itas.append(row[1])
    faces = sum(1 for value in itas if not isinstance(value, str))
    ctx.log(f"{faces} of {len(rows)} images with one face; written to {path.name}")
    histogram = reserve_beside(ctx, params, path.stem + "_histogram.bokeh.json", (".bokeh.json",))
    histogram.write_text(json.dumps({"item": ita_histogram_item(itas), "csv": None}))
    return [path, histogram]


PLUGIN = register(Plugin(
    id="face_evaluation", kind="postprocess", group="Fairness", title="Face evaluation (ITA)",
    description="Finds the face in each image (OpenCV's frontal-face Haar cascade) and measures its skin tone "
                "as the Individual Typology Angle over 9 patches of the face, with the skin-tone category of "
                "the usual ITA bands (very light > 55 > light > 41 > intermediate > 28 > tan > 10 > brown > -30 "
                "> dark) and a histogram of the table. Colours are converted RGB -> CIE Lab correctly (NNC "
                "swaps R and B). Skin color measurement in terms of ITA (Chardon et al., 1991); Del Bino & "
                "Bernerd (2013) for the categories.",
    params=(
        input_param(help_text="the table whose first column holds the face images"),
        output_param("ita.csv"),
    ),
    runner=run, completer=record_outputs, cross_check=lambda p: output_errors(p, ".csv"),
))
