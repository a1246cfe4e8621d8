"""The last step shared by every dataset builder: split the kept rows and materialise each output
folder (files moved, never copied, plus the NNC CSV)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from nnc_web.engine.nnc_csv import Column, write_csv
from nnc_web.engine.reporting import Reporter, UserError
from nnc_web.engine.splitting import split_rows


@dataclass(frozen=True)
class OutputSpec:
    name: str
    ratio: int


@dataclass
class BuiltDataset:
    """One output dataset, complete in `folder` (CSV + files) and ready to register."""

    name: str
    folder: Path
    csv_name: str
    rows: int
    columns: list[Column]
    class_names: list[str]


@dataclass
class Row:
    cells: list[str]  # CSV cells; file cells are `./<relative path>`
    files: list[str]  # relative paths under the staging folder that belong to this row (none: tabular)


def active_outputs(outputs: list[OutputSpec]) -> list[OutputSpec]:
    named = [o for o in outputs if o.ratio > 0]
    if not named:
        raise UserError("at least one output needs a ratio above 0")
    return named


def write_outputs(staging: Path, workdir: Path, outputs: list[OutputSpec], rows: list[Row], header: list[str],
                  columns: list[Column], class_names: list[str], shuffle: bool, seed: int,
                  reporter: Reporter) -> list[BuiltDataset]:
    """Split `rows` (in source order) by the outputs' ratios and build one folder per output."""
    named = active_outputs(outputs)
    first, second = split_rows(rows, named[0].ratio, named[1].ratio if len(named) > 1 else 0, shuffle, seed)
    built = []
    for spec, chosen in zip(named, (first, second), strict=False):
        if not chosen:
            reporter.log(f"dataset {spec.name!r} would be empty and was not created")
            continue
        folder = workdir / "outputs" / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        for row in chosen:
            for relative in row.files:
                target = folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                (staging / relative).rename(target)
        csv_name = f"{spec.name}.csv"
        write_csv(folder / csv_name, header, [row.cells for row in chosen])
        reporter.log(f"dataset {spec.name!r}: {len(chosen)} rows")
        built.append(BuiltDataset(spec.name, folder, csv_name, len(chosen), columns, class_names))
    unused = len(rows) - len(first) - len(second)
    if unused:
        reporter.log(f"{unused} rows are beyond ratio1 + ratio2 and were left out")
    shutil.rmtree(staging, ignore_errors=True)
    return built
