"""NNC's Cross Tabulation (§3.1): counts (or row ratios) of one variable's class against another's,
in the exact CSV layout NNC writes."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from nnc_web.engine.analysis.table import Table, find_columns, shown_value
from nnc_web.engine.reporting import UserError


def class_values(table: Table, variable: str) -> np.ndarray:
    """Per-row class index of a variable, by NNC's rules: several columns give the argmax; one column
    with a `.` in any cell is a probability binarised at 0.5; otherwise the cells are integers."""
    columns = find_columns(table.header, variable, table.name)
    if not table.rows:
        raise UserError(f"{table.name} has no data rows")
    cells = [[row[i] for i in columns] for row in table.rows]
    if len(columns) > 1:
        values = np.argmax(_numbers(table, variable, cells, float), axis=1)
    elif any("." in row[0] for row in cells):
        values = (_numbers(table, variable, cells, float)[:, 0] >= 0.5).astype(np.int64)
    else:
        values = _numbers(table, variable, cells, int)[:, 0]
    negative = np.flatnonzero(values < 0)
    if negative.size:
        raise UserError(f"{variable}: class indices start at 0; {table.name} line {negative[0] + 2} has "
                        f"{values[negative[0]]}")
    return values


def _numbers(table: Table, variable: str, cells: list[list[str]], kind: type) -> np.ndarray:
    values = []
    for number, row in enumerate(cells, start=2):
        try:
            values.append([kind(cell) for cell in row])
        except ValueError as exc:
            raise UserError(f"{variable}: {table.name} line {number} has {', '.join(map(shown_value, row))!r}, not "
                            f"{'an integer' if kind is int else 'a number'}") from exc
    return np.asarray(values, dtype=np.float64 if kind is float else np.int64)


def cross_tabulation(table: Table, variable1: str = "y", variable2: str = "y",
                     variable2_eval: str | None = None, output_in_ratio: bool = False) -> list[list]:
    """The rows of NNC's cross_tabulation.csv, header block and blank line included."""
    rows_of = class_values(table, variable1)
    columns_of = class_values(table, variable2)
    column_variable = variable2
    column_names = [f"{variable2} = {i}" for i in range(int(columns_of.max()) + 1)]
    if variable2_eval:
        columns_of = (columns_of != class_values(table, variable2_eval)).astype(np.int64)
        column_variable = f"{variable2} = {variable2_eval}"
        # Always both columns: a table where everything is correct still shows Incorrect = 0.
        column_names = ["Correct", "Incorrect"]
    counts = np.zeros((int(rows_of.max()) + 1, len(column_names)), dtype=np.int64)
    np.add.at(counts, (rows_of, columns_of), 1)
    body: list[list] = []
    for index, row in enumerate(counts.tolist()):
        total = sum(row)
        # NNC divides only rows with data; an empty row keeps its integer zeros.
        cells = [count / total for count in row] if output_in_ratio and total else row
        body.append([f"{variable1} = {index}", *cells])
    return [["Row variable", variable1], ["Column variable", column_variable], [], ["", *column_names], *body]


def write_cross_tabulation(path: Path, rows: list[list]) -> None:
    """Write with csv.writer's default CRLF line endings, as NNC's script does."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
