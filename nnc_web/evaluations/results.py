"""The evaluation table of a run: output_result.csv joined with its validation dataset's rows."""
from __future__ import annotations

import csv

from django.http import Http404

from nnc_web.datasets.palette import palette
from nnc_web.engine.anomaly.data import anomaly_label, normal_label
from nnc_web.engine.errors import UserError
from nnc_web.engine.imaging import IMAGE_SUFFIXES
from nnc_web.engine.nnc_csv import parse_header_cell, read_table
from nnc_web.engine.safe_paths import safe_join
from nnc_web.projects.models import Run


def anomaly_rows(run: Run, start: int, limit: int, threshold: float | None, flagged: bool | None) -> dict:
    """Rows by descending anomaly score, with their heat map; with `threshold` and `flagged`, only the
    rows at/above (flagged) or below it. The first page also carries every score and label, so the
    UI can re-label rows live as the threshold moves."""
    header, rows = read_table(run.folder() / "output_result.csv")
    cells = [parse_header_cell(c) for c in header]
    names = [c.name for c in cells]
    x, score, heatmap = names.index("x"), header.index("y'"), header.index("heatmap")
    labels = None
    if "y" in names:  # output_result.csv keeps the y column and its class names
        y = names.index("y")
        normal = normal_label(cells[y].classes)
        labels = [anomaly_label(row[y], normal) for row in rows]
    scores = [float(row[score]) for row in rows]
    order = sorted(range(len(rows)), key=lambda i: -scores[i])
    if threshold is not None and flagged is not None:
        order = [i for i in order if (scores[i] >= threshold) == flagged]
    page = [{"index": i, "image": rows[i][x], "heatmap": rows[i][heatmap].removeprefix("./"), "score": scores[i],
             "label": labels[i] if labels is not None else None} for i in order[start:start + limit]]
    result = {"total": len(order), "start": start, "rows": page, "dataset": run.valid_dataset_id,
              "next": start + limit if start + limit < len(order) else None, "anomaly": True}
    if start == 0:
        result["all_scores"], result["all_labels"] = scores, labels
    return result


def _boxes(text: str, scored: bool) -> list[dict]:
    """`class cx cy w h` lines (normalised; predictions add the score), best score first."""
    boxes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != (6 if scored else 5):
            raise ValueError(line)
        box = {"cls": int(parts[0]), "cx": float(parts[1]), "cy": float(parts[2]), "w": float(parts[3]),
               "h": float(parts[4])}
        if scored:
            box["score"] = float(parts[5])
        boxes.append(box)
    return sorted(boxes, key=lambda b: -b["score"]) if scored else boxes


def _detection_boxes(run: Run, entry: dict) -> None:
    """Adds the truth and predicted boxes of a page row (every kept box with its score, so the UI's
    threshold slider re-draws them without asking again), or `problem`: what is wrong with its files."""
    from nnc_web.datasets.services import dataset_file

    try:
        entry["truth_boxes"] = _boxes(dataset_file(run.valid_dataset, entry["truth"]).read_text(), scored=False)
    except (UserError, OSError, ValueError):
        entry["truth_boxes"], entry["problem"] = [], (
            f"its truth boxes file {entry['truth'].removeprefix('./')} is missing or not `class cx cy w h` lines")
    try:
        entry["boxes"] = _boxes(safe_join(run.folder(), entry["predicted"]).read_text(), scored=True)
    except (UserError, OSError, ValueError):
        entry["boxes"], entry["problem"] = [], (
            f"its predicted boxes file {entry['predicted']} is missing or damaged: evaluate the run again")


def prediction_rows(run: Run, start: int, limit: int) -> dict:
    """Detection / segmentation rows, worst first (#errors: wrong and missed boxes at the threshold;
    #pixel_error: the share of wrong pixels): the image and truth cells of the validation dataset, the
    predicted file under the run's folder (boxes: `class cx cy w h score` lines; masks: a class-id PNG).
    Detection rows also carry their truth and predicted boxes as JSON (`truth_boxes`, `boxes`: every box
    the evaluation kept, down to `min_score`, with its score)."""
    header, rows = read_table(run.folder() / "output_result.csv")
    names = [parse_header_cell(c).name for c in header]
    kind = run.metrics["kind"]
    truth = header.index("#boxes") if "#boxes" in header else names.index("y")
    predicted = names.index("y'")
    error = header.index("#errors" if kind == "detection" else "#pixel_error")
    _, source = read_table(run.valid_dataset.csv_path())  # same order: evaluation keeps the rows' order
    if len(source) != len(rows):
        raise UserError("the validation dataset no longer matches this evaluation: evaluate the run again")
    x = names.index("x")
    order = sorted(range(len(rows)), key=lambda i: -float(rows[i][error]))
    page = [{"index": i, "image": source[i][x], "truth": source[i][truth], "error": float(rows[i][error]),
             "predicted": rows[i][predicted].removeprefix("./")} for i in order[start:start + limit]]
    class_names = run.metrics.get("class_names") or []
    result = {"total": len(rows), "start": start, "rows": page, "dataset": run.valid_dataset_id, kind: True,
              "threshold": run.metrics.get("threshold"), "class_names": class_names,
              "palette": palette(len(class_names)), "next": start + limit if start + limit < len(rows) else None}
    if kind == "detection":
        from nnc_web.engine.detection_training.evaluation import KEEP_SCORE

        for entry in page:
            _detection_boxes(run, entry)
        result["min_score"] = KEEP_SCORE
    return result


def result_rows(run: Run, start: int, limit: int, actual: int | None, predicted: int | None,
                misclassified: bool, threshold: float | None = None, flagged: bool | None = None) -> dict:
    path = run.folder() / "output_result.csv"
    if not path.exists() or run.valid_dataset is None:
        raise Http404
    if run.metrics.get("kind") == "anomaly":
        return anomaly_rows(run, start, limit, threshold, flagged)
    if run.metrics.get("kind") in ("detection", "segmentation"):
        return prediction_rows(run, start, limit)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    with open(run.valid_dataset.csv_path(), encoding="utf-8-sig", newline="") as handle:
        source = list(csv.reader(handle))[1:]  # same order: evaluation keeps the rows' order
    names = [parse_header_cell(c).name for c in header]
    x, y = names.index("x"), names.index("y")
    score_columns = [i for i, c in enumerate(header) if c.startswith("y'__")]
    is_image = bool(source) and source[0][x].lower().endswith(IMAGE_SUFFIXES)
    if not score_columns:  # regression: the prediction itself, no classes to filter by
        value = header.index("y'")
        page = [{"index": i, "label": float(row[y]), "predicted": float(row[value]), "values": row[x:x + 6]}
                for i, row in enumerate(rows[start:start + limit], start=start)]
        return {"total": len(rows), "start": start, "rows": page, "dataset": run.valid_dataset_id,
                "next": start + limit if start + limit < len(rows) else None, "regression": True}
    matches = []
    for index, row in enumerate(rows):
        scores = [float(row[i]) for i in score_columns]
        label, guess = int(float(row[y])), max(range(len(scores)), key=scores.__getitem__)
        if (actual is not None and label != actual) or (predicted is not None and guess != predicted):
            continue
        if misclassified and label == guess:
            continue
        entry = {"index": index, "label": label, "predicted": guess, "score": scores[guess], "scores": scores}
        if is_image:
            entry["image"] = source[index][x]
        else:
            entry["values"] = row[x:x + 6]
        matches.append(entry)
    page = matches[start:start + limit]
    return {"total": len(matches), "start": start, "rows": page, "dataset": run.valid_dataset_id,
            "next": start + limit if start + limit < len(matches) else None}
