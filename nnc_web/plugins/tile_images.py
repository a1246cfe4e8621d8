"""Post-processing: Tile Images (NNC's Visualization plugin) - the images of a table as one mosaic."""
from __future__ import annotations

from nnc_web.engine.analysis.table import load_table
from nnc_web.engine.reporting import log_list
from nnc_web.plugins.postprocess import (
    input_param,
    max_pixels,
    output_errors,
    output_param,
    output_path,
    record_outputs,
    resolver_for,
)
from nnc_web.plugins.registry import Param, Plugin, register


def run(ctx, params: dict) -> list:
    from nnc_web.engine.analysis.tiles import tile_images

    table = load_table(params["input"])
    variables = [v.strip() for v in (params.get("variable") or "").split(",") if v.strip()] or None
    image, skipped = tile_images(table, resolver_for(params, params["input"]), variables, params["image_width"],
                                 params["image_height"], params["num_column"], params["start_index"],
                                 params["end_index"], max_pixels())
    log_list(ctx, "skipped ", skipped)
    path = output_path(ctx, params, (".png",))
    image.save(path)
    ctx.log(f"{image.width} x {image.height} mosaic written to {path.name}")
    return [path]


PLUGIN = register(Plugin(
    id="tile_images", kind="postprocess", group="Visualization", title="Tile Images",
    description="Tiles the images of a table (rows start_index..end_index, then the matching columns) into "
                "one picture, num_column per row, each at the size of the first image (scaled down so the "
                "picture is at most 3840 pixels wide) or at image_width x image_height.",
    params=(
        input_param(),
        Param("variable", "variable", None, multiple=True,
              help="image variables to tile, comma-separated (empty: every image column)"),
        Param("image_width", "int", -1, min=-1, max=4096, help="tile width (-1: the first image's)"),
        Param("image_height", "int", -1, min=-1, max=4096, help="tile height (-1: the first image's)"),
        Param("num_column", "int", 32, min=1, max=1024, help="tiles per row"),
        Param("start_index", "int", 0, min=0, help="first row"),
        Param("end_index", "int", -1, min=-1, help="last row, inclusive (-1: the last row)"),
        output_param("tiled_images.png"),
    ),
    runner=run, completer=record_outputs, cross_check=lambda p: output_errors(p, ".png"),
))
