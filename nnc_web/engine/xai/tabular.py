"""A tabular MLP bundle as the tabular explanations need it: its prediction (the y' the user saw:
class scores after softmax, or the value of a regressor), the rows of a CSV in its input order, and
the features to explain: a numeric column, or a categorical column's one-hot group taken as one
feature (`'colour' = red`) rather than as unrelated 0/1 columns."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nnc_web.engine.analysis.table import load_table
from nnc_web.engine.errors import UserError
from nnc_web.engine.nnc_csv import parse_header_cell
from nnc_web.engine.training.tabular_mlp import FORMAT, load_tabular_bundle

PREDICT_ROWS = 65_536  # rows per forward pass: bounded memory for Kernel SHAP's background sweeps
# Below this many rows a CPU forward pass of the MLP runs on one thread: handing tiny matrices to a
# thread pool costs more than the work, and on a busy machine far more (LIME's 1,000-row pass took
# 136 ms on two threads and 0.24 ms on one with the load at 11 on 2 cores).
ONE_THREAD_ROWS = 16_384


@dataclass(frozen=True)
class Feature:
    """One explained feature: `columns` are its places in the model's input (x__k)."""

    label: str  # the column's name (`Age`, `colour`)
    columns: tuple[int, ...]
    categories: tuple[str, ...] = ()  # a categorical feature: one value per column (one-hot)
    cell: str = ""  # a numeric feature's header cell (`x__0:Age`)

    @property
    def categorical(self) -> bool:
        return bool(self.categories)

    @property
    def name(self) -> str:
        """The name in output headers: NNC's `x__0:Age`; a one-hot group `x__2..4:colour`."""
        if not self.categorical:
            return self.cell or f"x__{self.columns[0]}:{self.label}"
        first, last = self.columns[0], self.columns[-1]
        return f"x__{first}:{self.label}" if first == last else f"x__{first}..{last}:{self.label}"


class Encoding:
    """Between the model's input columns and one value per feature (a number, or a category index)."""

    def __init__(self, features: list[Feature], width: int) -> None:
        self.features = features
        self.width = width

    @property
    def categorical(self) -> list[int]:
        return [i for i, f in enumerate(self.features) if f.categorical]

    def group(self, x: np.ndarray) -> np.ndarray:
        """(N, width) model inputs -> (N, features): numeric values, category indices."""
        out = np.empty((len(x), len(self.features)), dtype=np.float64)
        for j, feature in enumerate(self.features):
            block = x[:, list(feature.columns)]
            out[:, j] = block.argmax(axis=1) if feature.categorical else block[:, 0]
        return out

    def expand(self, grouped: np.ndarray) -> np.ndarray:
        """(N, features) -> (N, width) model inputs (categories one-hot again)."""
        out = np.zeros((len(grouped), self.width), dtype=np.float32)
        rows = np.arange(len(grouped))
        for j, feature in enumerate(self.features):
            if feature.categorical:
                columns = np.asarray(feature.columns)
                out[rows, columns[grouped[:, j].astype(int)]] = 1.0
            else:
                out[:, feature.columns[0]] = grouped[:, j]
        return out

    def membership(self) -> np.ndarray:
        """(features, width) 0/1: which input columns each feature switches (Kernel SHAP's coalitions)."""
        matrix = np.zeros((len(self.features), self.width), dtype=np.float32)
        for j, feature in enumerate(self.features):
            matrix[j, list(feature.columns)] = 1.0
        return matrix


@dataclass
class TabularModel:
    model: torch.nn.Module
    manifest: dict
    device: torch.device

    @property
    def input_header(self) -> list[str]:
        return list(self.manifest["input_header"])

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest.get("class_names") or [])

    @property
    def regression(self) -> bool:
        return not self.class_names

    @property
    def outputs(self) -> int:
        return int(self.manifest["outputs"])

    def check_class(self, class_index: int) -> int:
        if self.regression:
            if class_index != 0:
                raise UserError(f"class_index {class_index} is out of range: this model is a regressor, "
                                "so class_index must be 0 (its one output)")
            return 0
        if not 0 <= class_index < self.outputs:
            names = ", ".join(f"{i} = {n}" for i, n in enumerate(self.class_names))
            raise UserError(f"class_index {class_index} is out of range: this model has {self.outputs} classes "
                            f"({names})")
        return class_index

    def predict(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Model inputs (N, width) -> (N, outputs) on the device: softmax scores, or the regressor's value."""
        x = torch.as_tensor(x, dtype=torch.float32).to(self.device)
        with torch.no_grad(), _one_thread(self.device.type == "cpu" and len(x) <= ONE_THREAD_ROWS):
            out = torch.cat([self.model(x[i:i + PREDICT_ROWS]) for i in range(0, len(x), PREDICT_ROWS)])
            return out if self.regression else torch.softmax(out, dim=1)

    def predict_numpy(self, x: np.ndarray) -> np.ndarray:
        return self.predict(x).double().cpu().numpy()


@contextmanager
def _one_thread(active: bool) -> Iterator[None]:
    if not active:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_tabular_model(bundle: Path, device: torch.device) -> TabularModel:
    """The bundle's tabular MLP on `device`; a clear message for a model that is not one."""
    try:
        manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError("this run has no readable model") from exc
    if manifest.get("format") != FORMAT:
        raise UserError("this explanation needs a tabular model (the Tabular classifier/regressor); this run's "
                        f"model is {manifest.get('architecture', 'unknown')}")
    model, manifest = load_tabular_bundle(Path(bundle))
    return TabularModel(model.to(device).eval(), manifest, device)


@dataclass
class TabularRows:
    """The model's input columns of a CSV: numbers for the model, the cells as written for display."""

    name: str
    x: np.ndarray  # (N, width) float32
    cells: list[list[str]]


def read_rows(path: Path, model: TabularModel) -> TabularRows:
    """The x columns of a CSV, which must be the model's inputs in its order."""
    table = load_table(Path(path))
    columns = [i for i, cell in enumerate(table.header) if parse_header_cell(cell).name == "x"]
    given = [table.header[i].strip() for i in columns]
    expected = [cell.strip() for cell in model.input_header]
    if given != expected:
        raise UserError(f"the x columns of {table.name} are not this model's inputs: it has {len(given)} "
                        f"({', '.join(given[:4]) or 'none'}{', ...' if len(given) > 4 else ''}), the model takes "
                        f"{len(expected)} ({', '.join(expected[:4])}{', ...' if len(expected) > 4 else ''})")
    if not table.rows:
        raise UserError(f"{table.name} has no rows")
    cells = [[row[i].strip() for i in columns] for row in table.rows]
    try:
        x = np.array(cells, dtype=np.float64)
    except ValueError:
        for number, row in enumerate(cells, start=2):
            for cell, value in zip(given, row, strict=True):
                try:
                    float(value)
                except ValueError:
                    raise UserError(f"{table.name} line {number}: {cell} is not a number ({value!r})") from None
        raise
    if not np.isfinite(x).all():
        raise UserError(f"{table.name}: every x value must be a finite number")
    return TabularRows(table.name, x.astype(np.float32), cells)


def pick_row(rows: TabularRows, index: int) -> int:
    """NNC's 1-based `index` as a 0-based row, with a clear message when it is outside the CSV."""
    count = len(rows.x)
    if not 1 <= index <= count:
        raise UserError(f"index {index} is out of range: the index is 1-based, from 1 to {count} "
                        f"(the rows of {rows.name})")
    return index - 1


def features_of(model: TabularModel, *data: np.ndarray) -> list[Feature]:
    """The features to explain: the Tabular plugin's one-hot groups (from the bundle's encoding, else
    from header labels `colour=red` in a row), each kept only where every row of `data` is one-hot."""
    header = model.input_header
    labels = [parse_header_cell(cell).label or cell.strip() for cell in header]  # `x__3` when unlabelled
    groups = _groups_from_encoding(model.manifest.get("features"), labels) or _groups_from_labels(labels)
    features: list[Feature] = []
    for label, columns, categories in groups:
        if categories and all(_one_hot(block[:, columns]) for block in data):
            features.append(Feature(label, tuple(columns), tuple(categories)))
        else:  # not a clean one-hot group: each column is a number of its own
            features += [Feature(labels[c], (c,), cell=header[c].strip()) for c in columns]
    return features


def _groups_from_encoding(encoded: list[dict] | None, labels: list[str]) -> list[tuple] | None:
    """(label, columns, categories) per feature of the Tabular plugin's schema, if it matches the header."""
    if not encoded:
        return None
    groups, column = [], 0
    for feature in encoded:
        if feature.get("kind") == "categorical":
            categories = [str(c) for c in feature.get("categories") or []]
            expected = [f"{feature['column']}={c}" for c in categories]
            if labels[column:column + len(expected)] != expected:
                return None
            groups.append((str(feature["column"]), list(range(column, column + len(expected))), categories))
            column += len(expected)
        else:
            if column >= len(labels) or labels[column] != feature.get("column"):
                return None
            groups.append((labels[column], [column], []))
            column += 1
    return groups if column == len(labels) else None


def _groups_from_labels(labels: list[str]) -> list[tuple]:
    """Runs of consecutive `name=value` labels with the same name, as NNC's tabular datasets write them."""
    groups: list[tuple] = []
    for column, label in enumerate(labels):
        name, equals, value = label.partition("=")
        if equals and groups and groups[-1][2] and groups[-1][0] == name and groups[-1][1][-1] == column - 1:
            groups[-1][1].append(column)
            groups[-1][2].append(value)
        elif equals and name:
            groups.append((name, [column], [value]))
        else:
            groups.append((label, [column], []))
    return groups


def _one_hot(block: np.ndarray) -> bool:
    return bool(np.isin(block, (0.0, 1.0)).all() and (block.sum(axis=1) == 1).all())


def display_values(features: list[Feature], cells: list[str]) -> list[str]:
    """A row's value of each feature as text: the number as written, or the category's name."""
    values = []
    for feature in features:
        if feature.categorical:
            hot = [i for i, c in enumerate(feature.columns) if float(cells[c]) == 1.0]
            values.append(feature.categories[hot[0]])
        else:
            values.append(cells[feature.columns[0]])
    return values


@dataclass
class TabularTask:
    """What a tabular explanation job works on: the model, the rows to explain, the training rows
    (LIME's bins and frequencies, Kernel SHAP's background) and the features."""

    model: TabularModel
    rows: TabularRows
    train: TabularRows
    features: list[Feature]

    def describe(self) -> str:
        groups = [f for f in self.features if f.categorical]
        text = (f"{len(self.features)} features from {self.model.manifest['inputs']} model inputs, "
                f"{len(self.rows.x)} rows in {self.rows.name}, {len(self.train.x)} training rows in {self.train.name}")
        if groups:
            text += "; one-hot groups explained as one feature: " + ", ".join(
                f"{f.label} ({len(f.categories)} values)" for f in groups)
        return text

    def target(self, class_index: int) -> str:
        """What is explained, in words: `class 1 (versicolor)` or `the predicted value`."""
        if self.model.regression:
            return "the predicted value"
        names = self.model.class_names
        return f"class {class_index}" + (f" ({names[class_index]})" if class_index < len(names) else "")


def load_task(bundle: Path, input_csv: Path, train_csv: Path, device: torch.device) -> TabularTask:
    model = load_tabular_model(bundle, device)
    rows = read_rows(input_csv, model)
    train = read_rows(train_csv, model)
    return TabularTask(model, rows, train, features_of(model, train.x, rows.x))
