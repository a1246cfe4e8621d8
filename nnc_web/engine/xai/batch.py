"""The batch form of the image explanations, NNC's layout: every row of a CSV explained for the class
its label variable names, one picture per row at `<output stem>/<row // 1000 as 4 digits>/<row>.png`,
and the input CSV written again with the picture's column first (`gradcam,x:image,y:label,...`);
Grad-CAM adds its raw map (float16 .npy at the input size) as a last column."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from nnc_web.engine.analysis.table import CellResolver, find_columns, load_image, load_table
from nnc_web.engine.atomic import replace_atomically
from nnc_web.engine.errors import UserError
from nnc_web.engine.nnc_csv import write_csv
from nnc_web.engine.reporting import Reporter, check_stop, log_list
from nnc_web.engine.xai.classifier import ImageClassifier
from nnc_web.engine.xai.pictures import save_png
from nnc_web.engine.xai.writer import BackgroundWriter


def result_cell(stem: str, index: int, suffix: str = ".png") -> str:
    """Where row `index` (0-based) puts its picture, relative to the output CSV (NNC's layout)."""
    return f"{stem}/{index // 1000:04d}/{index}{suffix}"


def row_class(row: list[str], columns: list[int], classifier: ImageClassifier) -> int:
    """The class a row asks for: its label used as a class index (NNC takes argmax of the scalar, always
    0); a vector variable (y' = the scores, a one-hot y) gives its largest element. A one-output model
    (an anomaly model's score) has one thing to explain, whatever the row's label says."""
    if classifier.num_classes == 1:
        return 0
    cells = [row[c].strip() for c in columns]
    try:
        values = [float(c) for c in cells]
    except ValueError:
        raise UserError(f"label {cells[0]!r} is not a class index") from None
    if len(values) == 1:
        if not values[0].is_integer():
            raise UserError(f"label {cells[0]} is not a whole class index")
        index = int(values[0])
        if not 0 <= index < classifier.num_classes:
            raise UserError(f"label {index} is not a class of this model ({classifier.num_classes} classes: "
                            f"0-{classifier.num_classes - 1})")
        return index
    if len(values) != classifier.num_classes:
        raise UserError(f"the label has {len(values)} values; the model has {classifier.num_classes} classes")
    return int(np.argmax(values))


@dataclass
class Item:
    """One row to explain: its image (resized to the model's input by the method) and class."""

    index: int
    image: Image.Image
    class_index: int


@dataclass
class Explained:
    picture: np.ndarray | Callable[[], np.ndarray]  # or how to draw it (then drawn on the writer thread)
    raw: np.ndarray | None = None  # Grad-CAM's map at the input size


def _write_row(folder: Path, picture_cell: str, raw_cell: str, result: Explained) -> None:
    """One row's files (on the writer thread): the picture as PNG, the raw map as float16 .npy."""
    save_png(result.picture() if callable(result.picture) else result.picture, folder / picture_cell)
    if raw_cell and result.raw is not None:
        raw = result.raw.astype(np.float16)

        def write_npy(path: Path) -> None:
            with open(path, "wb") as handle:  # a handle: np.save would add .npy to the temporary name
                np.save(handle, raw)

        replace_atomically(folder / raw_cell, write_npy)


@dataclass
class BatchSpec:
    column: str  # the picture's column, first in the output (gradcam, lime, shap, SmoothGrad)
    raw_column: str | None = None  # the raw map's column, last (Grad-CAM only)
    chunk: int = 1  # rows per call of `explain` (Grad-CAM batches images; the others batch samples)
    skipped: list[str] = field(default_factory=list)


def explain_table(reporter: Reporter, csv_path: Path, resolver: CellResolver, input_variable: str,
                  label_variable: str, classifier: ImageClassifier, output: Path, spec: BatchSpec,
                  explain: Callable[[list[Item]], list[Explained]], max_pixels: int) -> int:
    """Explain every row of `csv_path` into `output` and its picture folder; returns the rows explained.
    Rows whose image or label cannot be used are listed in the log and keep an empty cell."""
    table = load_table(csv_path)
    image_column = find_columns(table.header, input_variable, table.name)[0]
    label_columns = find_columns(table.header, label_variable, table.name)
    stem = output.name[:-len(".csv")]
    pictures = [""] * len(table.rows)
    raws = [""] * len(table.rows)
    resized, done, pending = 0, 0, []

    def flush(writer: BackgroundWriter) -> None:
        nonlocal done
        for item, result in zip(pending, explain(pending), strict=True):
            pictures[item.index] = result_cell(stem, item.index)
            if spec.raw_column is not None and result.raw is not None:
                raws[item.index] = result_cell(stem, item.index, ".npy")
            writer.submit(pictures[item.index], partial(_write_row, output.parent, pictures[item.index],
                                                        raws[item.index], result))
        done += len(pending)
        pending.clear()

    # the pictures and maps are encoded and written on a thread while the next rows are explained
    with BackgroundWriter(depth=2 * max(spec.chunk, 1)) as writer:
        for index, row in enumerate(table.rows):
            check_stop(reporter)
            writer.check()
            reporter.progress(writer.written + len(spec.skipped), len(table.rows))
            try:
                image = load_image(resolver, row[image_column], max_pixels)
                item = Item(index, image, row_class(row, label_columns, classifier))
            except UserError as exc:
                spec.skipped.append(f"line {index + 2}: {exc}")
                continue
            if classifier.fit_image(image, resolver.display(row[image_column]), reporter, quiet=resized > 0):
                resized += 1
            pending.append(item)
            if len(pending) >= spec.chunk:
                flush(writer)
        if pending:
            flush(writer)
    reporter.progress(done + len(spec.skipped), len(table.rows))
    log_list(reporter, "skipped ", spec.skipped)
    if resized > 1:
        reporter.log(f"{resized} images were resized to {classifier.input_size} x {classifier.input_size}")
    if done == 0:
        raise UserError(f"no row of {table.name} could be explained" + (f" ({spec.skipped[0]})" if spec.skipped else ""))
    width = len(table.header)
    header = [spec.column, *table.header] + ([spec.raw_column] if spec.raw_column else [])
    rows = [[pictures[i], *row[:width]] + ([raws[i]] if spec.raw_column else []) for i, row in enumerate(table.rows)]
    write_csv(output, header, rows)
    return done
