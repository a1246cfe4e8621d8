"""NNC's Tile Images (§3.5): the image cells of a row range pasted onto one canvas, row by row."""
from __future__ import annotations

import math

from PIL import Image

from nnc_web.engine.analysis.table import CellResolver, Table, find_columns, is_image_cell, load_image
from nnc_web.engine.imaging import DEFAULT_MAX_PIXELS, to_channels
from nnc_web.engine.reporting import Reporter, UserError, check_stop

MAX_AUTO_WIDTH = 3840


def _image_columns(table: Table, variables: list[str] | None) -> list[int]:
    """The chosen columns that hold image cells, in header order (NNC iterates a set, whose order
    changes with the hash seed)."""
    if variables:
        chosen = sorted({i for v in variables for i in find_columns(table.header, v.strip(), table.name)})
    else:
        chosen = list(range(len(table.header)))
    columns = [i for i in chosen if any(is_image_cell(row[i]) for row in table.rows)]
    if not columns:
        names = ", ".join(table.header[i] for i in chosen)
        raise UserError(f"no image column in {table.name}; columns: {names}")
    return columns


def _tile_size(first: Image.Image, image_width: int, image_height: int, num_column: int) -> tuple[int, int]:
    if image_width > 0 and image_height > 0:
        return image_width, image_height
    width = image_width if image_width > 0 else first.width
    height = image_height if image_height > 0 else first.height
    if image_width <= 0 and width * num_column > MAX_AUTO_WIDTH:
        # Only an automatic size is scaled; NNC truncates the scaled size (24 px x 200 -> 19 px, 3800 wide).
        ratio = MAX_AUTO_WIDTH / (width * num_column)
        width = max(1, int(width * ratio))
        height = max(1, int(height * ratio)) if image_height <= 0 else height
    return width, height


def tile_images(table: Table, resolver: CellResolver, variables: list[str] | None, image_width: int = -1,
                image_height: int = -1, num_column: int = 32, start_index: int = 0, end_index: int = -1,
                max_pixels: int = DEFAULT_MAX_PIXELS, *,
                reporter: Reporter | None = None) -> tuple[Image.Image, list[str]]:
    """The tiled RGB image and one message per image that could not be read (listed and skipped)."""
    if num_column < 1:
        raise UserError(f"num_column must be at least 1, not {num_column}")
    columns = _image_columns(table, variables)
    last = len(table.rows) - 1 if end_index < 0 else min(end_index, len(table.rows) - 1)
    first_row = max(start_index, 0)
    cells = [row[i] for row in table.rows[first_row:last + 1] for i in columns if is_image_cell(row[i])]
    if not cells:
        raise UserError(f"no image in rows {first_row} to {last} of {table.name}")
    canvas: Image.Image | None = None
    tile = (0, 0)
    skipped: list[str] = []
    placed = 0
    for number, cell in enumerate(cells):
        if reporter is not None and number % 64 == 0:
            check_stop(reporter)
            reporter.progress(number, len(cells))
        try:
            image = to_channels(load_image(resolver, cell, max_pixels), 3)  # gray spreads to 3 channels
        except UserError as exc:
            skipped.append(str(exc))
            continue
        if canvas is None:
            tile = _tile_size(image, image_width, image_height, num_column)
            canvas = _blank_canvas(tile, num_column, len(cells), max_pixels)
        if image.size != tile:
            image = image.resize(tile, Image.Resampling.BILINEAR)
        canvas.paste(image, ((placed % num_column) * tile[0], (placed // num_column) * tile[1]))
        placed += 1
    if canvas is None:
        raise UserError(f"none of the {len(cells)} images could be read")
    if reporter is not None:
        reporter.progress(len(cells), len(cells))
    height = tile[1] * math.ceil(placed / num_column)
    if height < canvas.height:  # skipped images leave no gap, so the canvas may have rows to spare
        canvas = canvas.crop((0, 0, canvas.width, height))
    return canvas, skipped


def _blank_canvas(tile: tuple[int, int], num_column: int, count: int, max_pixels: int) -> Image.Image:
    width, height = tile[0] * num_column, tile[1] * math.ceil(count / num_column)
    if width * height > max_pixels:
        raise UserError(f"the tiled image would be {width}x{height}, over the {max_pixels} pixel limit; "
                        "choose fewer rows (start_index, end_index) or a smaller image size")
    return Image.new("RGB", (width, height), (0, 0, 0))
