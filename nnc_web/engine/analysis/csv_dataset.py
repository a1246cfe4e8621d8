"""A dataset from a result CSV (saved rows, a t-SNE or Grad-CAM output): the rows with their images
copied into a new dataset folder, so the selection can be trained on or evaluated like any dataset."""
from __future__ import annotations

import shutil
from pathlib import Path

from nnc_web.engine.analysis.table import CellResolver, Table, is_image_cell
from nnc_web.engine.dataset_outputs import BuiltDataset
from nnc_web.engine.errors import UserError
from nnc_web.engine.imaging import open_checked
from nnc_web.engine.nnc_csv import Column, parse_header_cell, write_csv
from nnc_web.engine.reporting import Reporter, check_stop


def _columns(table: Table, image_columns: list[int], first_image: Path | None, max_pixels: int) -> list[Column]:
    """What the dataset viewer shows per variable: x image 3,H,W; y label with its classes; numbers."""
    columns: list[Column] = []
    seen: set[str] = set()
    for index, cell in enumerate(table.header):
        parsed = parse_header_cell(cell)
        if parsed.name in seen or parsed.is_comment:
            continue
        seen.add(parsed.name)
        if index in image_columns and first_image is not None:
            with open_checked(first_image, max_pixels) as image:
                channels = 1 if image.mode in ("L", "I;16", "1") else 3
                shape = f"{channels},{image.height},{image.width}"
            columns.append(Column(parsed.name, parsed.label, "image", shape))
        elif parsed.classes:
            columns.append(Column(parsed.name, parsed.label, "label", "1", list(parsed.classes)))
        else:
            width = sum(1 for c in table.header if parse_header_cell(c).name == parsed.name)
            columns.append(Column(parsed.name, parsed.label, "number", str(width)))
    return columns


def build_csv_dataset(table: Table, resolver: CellResolver, name: str, workdir: Path, reporter: Reporter,
                      max_pixels: int) -> BuiltDataset:
    """Copy every image a row names under `images/<column>/`; a row whose image is missing is skipped."""
    sample = table.rows[0] if table.rows else []
    image_columns = [i for i, cell in enumerate(sample) if is_image_cell(cell)]
    if not image_columns:
        raise UserError(f"{table.path.name} has no image column: a dataset needs its images")
    folder = workdir / "outputs" / name
    shutil.rmtree(folder, ignore_errors=True)
    rows, skipped, first_image = [], [], None
    for number, row in enumerate(table.rows):
        if number % 100 == 0:
            check_stop(reporter)
            reporter.progress(number, len(table.rows))
        try:
            cells = list(row)
            for column in image_columns:
                source = resolver.resolve(row[column])
                relative = f"images/{column}/{number}_{source.name}"
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, folder / relative)
                first_image = first_image or folder / relative
                cells[column] = f"./{relative}"
            rows.append(cells)
        except (UserError, IndexError, OSError) as exc:
            skipped.append(f"row {number}: {exc}")
    for line in skipped[:200]:
        reporter.log(f"skipped {line}")
    if not rows:
        raise UserError(f"none of the {len(table.rows)} rows of {table.path.name} had readable images")
    csv_name = f"{name}.csv"
    write_csv(folder / csv_name, table.header, rows)
    reporter.progress(len(table.rows), len(table.rows))
    classes = next((list(parse_header_cell(c).classes) for c in table.header if parse_header_cell(c).classes), [])
    reporter.log(f"dataset {name!r}: {len(rows)} rows")
    return BuiltDataset(name, folder, csv_name, len(rows), _columns(table, image_columns, first_image, max_pixels),
                        classes)
