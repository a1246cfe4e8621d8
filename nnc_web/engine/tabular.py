"""Tabular datasets from CSV: NNC headers kept, plain headers encoded the way NNC's Simple Tabular
Dataset plugin does (numeric -> x__k:col, categorical -> one-hot x__k:col=value, class target ->
y:col;class;class, unused -> comment columns), with types detected and missing values reported."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nnc_web.engine.dataset_outputs import BuiltDataset, OutputSpec, Row, active_outputs, write_outputs
from nnc_web.engine.nnc_csv import Column, parse_header_cell
from nnc_web.engine.reporting import Reporter, UserError

MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}
SCHEMA_FILE = "tabular_schema.json"


@dataclass
class TabularOptions:
    target: str | None = None
    inputs: list[str] | None = None  # None: every other column
    categorical: list[str] | None = None  # None: detected (non-numeric columns)
    task: str = "auto"  # auto | classification | regression
    missing: str = "drop"  # drop | fill
    max_categories: int = 100


@dataclass
class Feature:
    column: str
    kind: str  # numeric | categorical
    categories: list[str] = field(default_factory=list)
    fill: str | float | None = None


def read_table(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise UserError(f"cannot read the CSV: {exc}") from exc
    if frame.empty or len(frame.columns) < 2:
        raise UserError("the CSV needs a header row, at least two columns and one data row")
    frame.columns = [str(c).strip() for c in frame.columns]
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise UserError(f"duplicate column names: {', '.join(duplicated)}")
    return frame


def is_missing(value: str) -> bool:
    return value.strip().lower() in MISSING


def _as_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def is_numeric(values: pd.Series) -> bool:
    present = [v for v in values if not is_missing(v)]
    return bool(present) and all(_as_number(v) is not None for v in present)


def is_nnc_header(columns: list[str]) -> bool:
    names = {parse_header_cell(c).name for c in columns if not c.startswith("#")}
    return "x" in names and "y" in names


def describe(frame: pd.DataFrame, reporter: Reporter) -> None:
    for column in frame.columns:
        values = frame[column]
        missing = int(values.map(is_missing).sum())
        kind = "numeric" if is_numeric(values) else f"categorical ({values[~values.map(is_missing)].nunique()} values)"
        reporter.log(f"column {column!r}: {kind}, {missing} missing")


def encode(frame: pd.DataFrame, options: TabularOptions, reporter: Reporter) -> tuple[list[str], list[list[str]], dict]:
    """Header, rows and schema in NNC's tabular encoding."""
    columns = list(frame.columns)
    target = options.target
    if not target or target not in columns:
        raise UserError(f"choose the target column (one of: {', '.join(columns)})")
    inputs = options.inputs or [c for c in columns if c != target]
    unknown = [c for c in inputs + (options.categorical or []) if c not in columns]
    if unknown:
        raise UserError(f"unknown columns: {', '.join(unknown)}")
    if target in inputs:
        raise UserError("the target cannot also be an input")
    categorical = set(options.categorical if options.categorical is not None
                      else [c for c in inputs if not is_numeric(frame[c])])
    for column in inputs:
        if column not in categorical and not is_numeric(frame[column]):
            raise UserError(f"column {column!r} has non-numeric values: mark it categorical")
    task = options.task
    if task == "auto":
        task = "regression" if is_numeric(frame[target]) and frame[target].nunique() > 20 else "classification"
    if task == "regression" and not is_numeric(frame[target]):
        raise UserError(f"the target {target!r} is not numeric: choose classification")

    used = [target, *inputs]
    missing_rows = frame[used].map(is_missing)
    target_missing = int(missing_rows[target].sum())
    keep = ~missing_rows[target]
    if options.missing == "drop":
        keep &= ~missing_rows[inputs].any(axis=1)
    dropped = int((~keep).sum())
    reporter.log(f"{dropped} rows dropped for missing values ({target_missing} with no target)")
    frame = frame[keep].reset_index(drop=True)
    if frame.empty:
        raise UserError("no row is left after dropping rows with missing values")

    features = []
    for column in inputs:
        values = frame[column]
        if column in categorical:
            present = sorted({v.strip() for v in values if not is_missing(v)})
            if any(is_missing(v) for v in values):
                present.append("(missing)")
            if len(present) > options.max_categories:
                raise UserError(f"column {column!r} has {len(present)} categories (at most {options.max_categories})")
            features.append(Feature(column, "categorical", present, "(missing)"))
        else:
            numbers = [_as_number(v) for v in values if not is_missing(v)]
            features.append(Feature(column, "numeric", fill=float(pd.Series(numbers).median()) if numbers else 0.0))

    header, index = [], 0
    for feature in features:
        if feature.kind == "numeric":
            header.append(f"x__{index}:{feature.column}")
            index += 1
        else:
            for category in feature.categories:
                header.append(f"x__{index}:{feature.column}={category}")
                index += 1
    classes: list[str] = []
    if task == "classification":
        classes = sorted({v.strip() for v in frame[target]}, key=_class_order)
        header.append(f"y:{target};" + ";".join(classes))
    else:
        header.append(f"y:{target}")
    comments = [c for c in columns if c not in used]
    header += [f"# {c}" for c in comments]

    rows = []
    for _, record in frame.iterrows():
        row = []
        for feature in features:
            value = record[feature.column]
            if feature.kind == "numeric":
                number = feature.fill if is_missing(value) else _as_number(value)
                row.append(f"{number:g}")
            else:
                chosen = "(missing)" if is_missing(value) else value.strip()
                row += ["1" if chosen == c else "0" for c in feature.categories]
        target_value = record[target].strip()
        row.append(str(classes.index(target_value)) if classes else f"{_as_number(target_value):g}")
        row += [record[c] for c in comments]
        rows.append(row)
    schema = {"task": task, "target": target, "classes": classes, "features": [f.__dict__ for f in features],
              "inputs": index}
    return header, rows, schema


def _check_nnc_rows(header: list[str], rows: list[list[str]]) -> None:
    """Every x cell a number, every y cell a number (or, with class names, a class index): a bad cell
    is named by its line and column, so the trainer never meets one."""
    cells = [parse_header_cell(c) for c in header]
    for number, row in enumerate(rows, start=2):
        for column, value, cell in zip(header, row, cells, strict=True):
            if cell.name not in ("x", "y"):
                continue
            parsed = _as_number(value)
            if cell.name == "y" and cell.classes:
                if parsed is None or not parsed.is_integer() or not 0 <= parsed < len(cell.classes):
                    raise UserError(f"line {number}, column {column}: {value!r} is not a class index "
                                    f"(0 to {len(cell.classes) - 1})")
            elif parsed is None:
                raise UserError(f"line {number}, column {column}: {value!r} is not a number")


def _class_order(value: str) -> tuple:
    number = _as_number(value)
    return (0, number, "") if number is not None else (1, 0, value)


def build_tabular_datasets(csv_path: Path, workdir: Path, options: TabularOptions, outputs: list[OutputSpec],
                           shuffle: bool, seed: int, reporter: Reporter) -> list[BuiltDataset]:
    active_outputs(outputs)  # fail before reading anything when no output would be written
    frame = read_table(csv_path)
    reporter.log(f"read {len(frame)} rows, {len(frame.columns)} columns")
    describe(frame, reporter)
    if is_nnc_header(list(frame.columns)) and not options.target:
        reporter.log("NNC headers found: the columns are kept as they are")
        header = list(frame.columns)
        rows = frame.values.tolist()
        cells = [parse_header_cell(c) for c in header]
        y_cell = next(c for c in cells if c.name == "y")
        inputs = sum(1 for c in cells if c.name == "x")
        schema = {"task": "classification" if y_cell.classes else "auto", "target": y_cell.label or "y",
                  "classes": list(y_cell.classes), "features": [], "inputs": inputs}
        _check_nnc_rows(header, rows)
    else:
        header, rows, schema = encode(frame, options, reporter)
    columns = [Column("x", "features", "number", str(schema["inputs"])),
               Column("y", schema["target"], "label" if schema["classes"] else "number", "1", schema["classes"])]
    built = write_outputs(workdir / "converted", workdir, outputs, [Row(row, []) for row in rows], header, columns,
                          schema["classes"], shuffle, seed, reporter)
    for dataset in built:  # the encoding travels with every output, for trainers and explainers
        (dataset.folder / SCHEMA_FILE).write_text(json.dumps(schema, indent=1))
    return built
