"""The Output result table: any CSV of a run or dataset, paginated, sorted and filtered, with its
image cells as thumbnail links. Server paths never reach the browser: cells inside the user's own
folder are shown relative to it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnc_web.engine.analysis.table import Table, is_image_cell, load_table, variable_names
from nnc_web.engine.errors import UserError
from nnc_web.engine.nnc_csv import parse_header_cell
from nnc_web.plugins.context import Workspace
from nnc_web.plugins.postprocess import display_cell, image_url


@dataclass(frozen=True)
class RowFilter:
    misclassified: bool = False
    actual: int | None = None
    predicted: int | None = None
    threshold: float | None = None
    flagged: bool | None = None
    sort: int | None = None
    descending: bool = False


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def column_kinds(table: Table) -> list[str]:
    """image | number | text per column, judged on the first row that has a value there."""
    kinds = []
    for index in range(len(table.header)):
        sample = next((row[index] for row in table.rows if index < len(row) and row[index] != ""), "")
        kinds.append("image" if is_image_cell(sample) else "number" if _as_float(sample) is not None else "text")
    return kinds


def _score_columns(header: list[str]) -> list[int]:
    return [i for i, cell in enumerate(header) if parse_header_cell(cell).name == "y'" and
            parse_header_cell(cell).index is not None]


def _label_column(header: list[str]) -> int | None:
    names = [parse_header_cell(c).name for c in header]
    return names.index("y") if names.count("y") == 1 else None


def filters_of(table: Table, anomaly: bool) -> dict:
    classification = _label_column(table.header) is not None and len(_score_columns(table.header)) >= 2
    has_score = any(cell.strip() == "y'" for cell in table.header)
    return {"classification": classification, "anomaly": anomaly and has_score}


def matching_rows(table: Table, chosen: RowFilter, anomaly: bool) -> list[int]:
    """Row indices that pass the filter, in the chosen order."""
    available = filters_of(table, anomaly)
    indices = list(range(len(table.rows)))
    if available["classification"] and (chosen.misclassified or chosen.actual is not None
                                        or chosen.predicted is not None):
        label_at, scores_at = _label_column(table.header), _score_columns(table.header)
        kept = []
        for i in indices:
            row = table.rows[i]
            try:
                label = int(float(row[label_at]))
                scores = [float(row[c]) for c in scores_at]
            except (ValueError, IndexError):
                continue
            guess = max(range(len(scores)), key=scores.__getitem__)
            if chosen.misclassified and label == guess:
                continue
            if (chosen.actual is not None and label != chosen.actual) or \
                    (chosen.predicted is not None and guess != chosen.predicted):
                continue
            kept.append(i)
        indices = kept
    if available["anomaly"] and chosen.threshold is not None and chosen.flagged is not None:
        score_at = [c.strip() for c in table.header].index("y'")
        indices = [i for i in indices
                   if ((_as_float(table.rows[i][score_at]) or 0.0) >= chosen.threshold) == chosen.flagged]
    if chosen.sort is not None:
        if not 0 <= chosen.sort < len(table.header):
            raise UserError(f"sort: no column {chosen.sort} (the table has {len(table.header)})")
        at = chosen.sort
        numeric = column_kinds(table)[at] == "number"

        def key(i: int):
            cell = table.rows[i][at] if at < len(table.rows[i]) else ""
            value = _as_float(cell) if numeric else None
            return (value is None, value if value is not None else 0.0, cell)

        indices.sort(key=key, reverse=chosen.descending)
    return indices


def table_page(workspace: Workspace, csv_name: str, start: int, limit: int, chosen: RowFilter,
               anomaly: bool, user_root: Path, classes: list[str] | None = None, row: int | None = None) -> dict:
    """A page of the table; with `row`, just that row (a point clicked in a plot)."""
    table = load_table(workspace.csv(csv_name))
    kinds = column_kinds(table)
    if row is not None:
        if not 0 <= row < len(table.rows):
            raise UserError(f"row: {row} is not a row of {csv_name} ({len(table.rows)} rows)")
        order, start = [row], 0
    else:
        order = matching_rows(table, chosen, anomaly)
    page = []
    for index in order[start:start + limit]:
        cells = [display_cell(c, user_root) for c in table.rows[index]]
        images = {str(i): image_url(workspace.url_base, cells[i], True)
                  for i, c in enumerate(cells) if i < len(kinds) and is_image_cell(c)}
        links = {k: v.removesuffix("&thumb=1") for k, v in images.items()}
        page.append({"index": index, "cells": cells, "images": images, "links": links})
    label_at = _label_column(table.header)
    header_classes = list(parse_header_cell(table.header[label_at]).classes) if label_at is not None else []
    return {"csv": csv_name, "header": table.header,
            "columns": [{"header": h, "variable": parse_header_cell(h).name, "kind": k}
                        for h, k in zip(table.header, kinds, strict=False)],
            "variables": variable_names(table.header), "classes": header_classes or classes or None,
            "filters": filters_of(table, anomaly), "total": len(order), "start": start, "rows": page,
            "next": start + limit if start + limit < len(order) else None}


def selected_rows(workspace: Workspace, csv_name: str, chosen: RowFilter, anomaly: bool,
                  rows: list[int] | None) -> tuple[Table, list[int]]:
    """The rows a *Save these rows* request means: the filter's, or exactly the given indices."""
    table = load_table(workspace.csv(csv_name))
    if rows is not None:
        bad = [i for i in rows if not 0 <= i < len(table.rows)]
        if bad:
            raise UserError(f"rows: {bad[0]} is not a row of {csv_name} ({len(table.rows)} rows)")
        return table, list(dict.fromkeys(rows))
    return table, matching_rows(table, chosen, anomaly)


__all__ = ["RowFilter", "matching_rows", "selected_rows", "table_page"]
