"""Output files of the analysis plugins: names reserved exclusively (a second run never overwrites the
first, two jobs never share a file), and CSVs written as the input plus new columns."""
from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from pathlib import Path

from nnc_web.engine.analysis.table import Table
from nnc_web.engine.nnc_csv import write_csv
from nnc_web.engine.reporting import UserError

NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,100}")
MAX_SUFFIX_NUMBER = 10_000


def check_output_name(name: str, suffixes: Sequence[str]) -> str:
    """A plain file name (letters, digits, `._-`, at most 100 characters) with one of `suffixes`;
    returns the suffix it ends in (the longest, so `.bokeh.json` wins over `.json`)."""
    allowed = ", ".join(suffixes)
    if not NAME_PATTERN.fullmatch(name) or name.startswith("."):
        raise UserError(f"output {name!r}: use a plain file name of letters, digits, '.', '_' and '-' "
                        f"(at most 100 characters) ending in {allowed}")
    matches = [s for s in suffixes if name.lower().endswith(s.lower()) and len(name) > len(s)]
    if not matches:
        raise UserError(f"output {name!r}: the name must end in {allowed}")
    return name[-max(len(s) for s in matches):]


def reserve_output(folder: Path, name: str, suffixes: Sequence[str] = (".csv",),
                   taken: Collection[str] = ()) -> Path:
    """Create `name` in `folder` exclusively and return it; when it exists (or is one of `taken`, e.g.
    a dataset's own CSV name that the table lists beside the outputs), `stem_1.ext`, `stem_2.ext`...
    (the stem is the name without its allowed suffix: `scatter.bokeh.json` -> `scatter_1.bokeh.json`)."""
    suffix = check_output_name(name, suffixes)
    stem = name[:-len(suffix)]
    for number in range(MAX_SUFFIX_NUMBER):
        candidate = Path(folder) / (name if number == 0 else f"{stem}_{number}{suffix}")
        if candidate.name in taken:
            continue
        try:
            with open(candidate, "x"):  # "x" fails if it exists: no race between two jobs
                return candidate
        except FileExistsError:
            continue
    raise UserError(f"output {name!r}: {MAX_SUFFIX_NUMBER} files of that name already exist; choose another")


def append_columns_csv(table: Table, new_header: list[str], new_columns: Sequence[Sequence[str]],
                       path: Path) -> None:
    """The input CSV with columns added at the end (t-SNE); each new column has one cell per row."""
    _check_columns(table, new_header, new_columns)
    width = len(table.header)  # cells past the header would shift the new columns
    rows = [[*row[:width], *(column[index] for column in new_columns)]
            for index, row in enumerate(table.rows)]
    write_csv(path, [*table.header, *new_header], rows)


def prepend_column_csv(table: Table, name: str, values: Sequence[str], path: Path) -> None:
    """The input CSV with one column inserted first, where NNC's batch XAI plugins put their result."""
    _check_columns(table, [name], [values])
    width = len(table.header)
    rows = [[values[index], *row[:width]] for index, row in enumerate(table.rows)]
    write_csv(path, [name, *table.header], rows)


def _check_columns(table: Table, header: list[str], columns: Sequence[Sequence[str]]) -> None:
    if len(header) != len(columns) or any(len(column) != len(table.rows) for column in columns):
        raise ValueError(f"{len(header)} names and {len(columns)} columns of {len(table.rows)} cells "
                         "expected")
