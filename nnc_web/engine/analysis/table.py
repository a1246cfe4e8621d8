"""An NNC CSV as the analysis plugins read it: variables and columns by name, and file cells resolved
safely against the CSV's folder and the folders a run may point into."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from PIL import Image

from nnc_web.engine.imaging import DEFAULT_MAX_PIXELS, open_checked
from nnc_web.engine.nnc_csv import parse_header_cell, read_table
from nnc_web.engine.reporting import UserError
from nnc_web.engine.safe_paths import is_within, safe_join

# NNC's tile-image rule is "the text contains .png/.jpg/.jpeg/.tif/.bmp"; .tiff and .gif as the loader.
IMAGE_MARKERS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")


@dataclass
class Table:
    path: Path
    header: list[str]
    rows: list[list[str]]

    @property
    def name(self) -> str:
        return self.path.name


def load_table(path: Path) -> Table:
    """Read a whole CSV (UTF-8, optional BOM); short rows are an error naming their line."""
    try:
        header, rows = read_table(path)
    except FileNotFoundError as exc:
        raise UserError(f"{path.name} not found") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{path.name} is not UTF-8 text") from exc
    for number, row in enumerate(rows, start=2):
        if len(row) < len(header):
            raise UserError(f"{path.name} line {number}: {len(row)} cells, the header has {len(header)}")
    return Table(path, header, rows)


def _column_key(cell: str) -> str:
    """`name__index` without the label: what the variable dropdown offers for one column."""
    parsed = parse_header_cell(cell)
    return parsed.name if parsed.index is None else f"{parsed.name}__{parsed.index}"


def variable_names(header: list[str]) -> list[str]:
    """Distinct variable names in column order, then each column of a vector variable as `name__i`."""
    cells = [parse_header_cell(c) for c in header]
    names = list(dict.fromkeys(c.name for c in cells if not c.is_comment))
    vector_names = {c.name for c in cells if c.index is not None and not c.is_comment}
    singles = [_column_key(h) for h, c in zip(header, cells, strict=True) if c.name in vector_names]
    return names + [s for s in dict.fromkeys(singles) if s not in names]


def find_columns(header: list[str], variable: str, source: str = "the CSV") -> list[int]:
    """Column indices of `variable`: the exact header cell wins (`y'__0`, `x:image`), then the cell
    without its label (`x__0` for `x__0:Age`), then every column of that variable name, in order.
    Comment columns (`# ...`) are never variables."""
    cells = [parse_header_cell(c) for c in header]
    exact = [i for i, cell in enumerate(header) if cell == variable and not cells[i].is_comment]
    if exact:
        return exact[:1]
    by_key = [i for i, c in enumerate(header) if not cells[i].is_comment and _column_key(c) == variable]
    if by_key and "__" in variable:
        return by_key[:1]
    by_name = [i for i, c in enumerate(cells) if not c.is_comment and c.name == variable]
    if by_name:
        return by_name
    raise UserError(f"no variable {variable!r} in {source}; variables: {', '.join(variable_names(header))}")


def is_image_cell(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in IMAGE_MARKERS)


def shown_value(cell: str, limit: int = 60) -> str:
    """A cell as a message may quote it: an absolute path as its file name, long text shortened."""
    text = PureWindowsPath(cell).name if _is_absolute(cell) else cell
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _is_absolute(cell: str) -> bool:
    return cell.startswith(("/", "\\")) or PureWindowsPath(cell).drive != ""


class CellResolver:
    """Turns a file cell into a path that is guaranteed to lie in the CSV's folder or one of `roots`
    (the run folder, the dataset folders); anything else is refused without naming server paths."""

    def __init__(self, csv_folder: Path, roots: list[Path]) -> None:
        self.csv_folder = Path(csv_folder)
        self.roots = [Path(r) for r in roots]

    def display(self, cell: str) -> str:
        """The cell as messages may show it: an absolute path inside the roots relative to the widest
        root that holds it (the user's folder: `datasets/3/a.png`), any other absolute path as its name."""
        if not _is_absolute(cell):
            return cell
        holders = [root for root in [self.csv_folder, *self.roots] if is_within(root, cell)]
        if holders:
            widest = min(holders, key=lambda root: len(Path(root).resolve().parts))
            return Path(cell).resolve().relative_to(Path(widest).resolve()).as_posix()
        return PureWindowsPath(cell).name if "\\" in cell else Path(cell).name

    def resolve(self, cell: str) -> Path:
        if not cell.strip():
            raise UserError("empty file cell")
        if _is_absolute(cell):
            # output_result.csv stores absolute paths (NNC's --replace_path); accept only ours.
            path = Path(cell)
            if not any(is_within(root, path) for root in [self.csv_folder, *self.roots]):
                raise UserError(f"{self.display(cell)}: not a file of this result or dataset")
            return self._existing(path.resolve(), self.display(cell))
        for root in [self.csv_folder, *self.roots]:
            try:
                candidate = safe_join(root, cell)
            except UserError as exc:
                raise UserError(f"{self.display(cell)}: not a file of this result or dataset") from exc
            if candidate.is_file():
                return candidate
        raise UserError(f"{cell}: file not found")

    @staticmethod
    def _existing(path: Path, shown: str) -> Path:
        if not path.is_file():
            raise UserError(f"{shown}: file not found")
        return path


def load_image(resolver: CellResolver, cell: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open and fully decode the image of a cell; every failure is a UserError naming the cell."""
    path = resolver.resolve(cell)
    try:
        with open_checked(path, max_pixels) as image:
            image.load()  # decode now: a damaged file fails here, not later in a resize
    except UserError as exc:
        raise UserError(f"{resolver.display(cell)}: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"{resolver.display(cell)}: image data is damaged") from exc
    return image
