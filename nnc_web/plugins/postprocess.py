"""What every post-processing plugin shares: the `output` parameter, the reader of CSV cells, and
the completer that records the outputs.

A post-processing plugin runs with its result folder (or a dataset's outputs folder) as the working
folder, as NNC's do: relative names such as `output_result.csv` mean files there. Its `run(ctx,
params)` gets the input CSV and the model bundle as paths and `params["_workspace"]` (plain data),
writes its files with `output_path`, and returns them; it never touches the ORM.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from django.conf import settings

from nnc_web.engine.analysis.outputs import reserve_output
from nnc_web.engine.analysis.table import CellResolver
from nnc_web.plugins.context import RECORDERS, Workspace
from nnc_web.plugins.registry import NAME_PATTERN, Param


def input_param(default: str = "output_result.csv", help_text: str = "the table to read") -> Param:
    return Param("input", "csv", default, required=True, help=help_text)


def output_param(default: str) -> Param:
    return Param("output", "text", default, required=True,
                 help="file name in the result folder (an existing file is kept: a _1, _2 suffix is added)")


def output_errors(params: dict, *suffixes: str) -> dict[str, str]:
    name = str(params.get("output") or "")
    stem = name
    for suffix in suffixes:
        stem = stem.removesuffix(suffix)
    if not any(name.lower().endswith(s) for s in suffixes):
        return {"output": f"must end with {' or '.join(suffixes)}"}
    if not NAME_PATTERN.match(stem) or len(name) > 100:
        return {"output": "a plain file name: letters, digits, '.', '_' or '-'"}
    return {}


def output_path(ctx, params: dict, suffixes: tuple[str, ...]) -> Path:
    """The file to write for `output`, never over an earlier one (logged when renamed)."""
    path = reserve_output(ctx.workdir, params["output"], suffixes, taken=taken_names(params["_workspace"]))
    if path.name != params["output"]:
        ctx.log(f"{params['output']} exists: writing {path.name}")
    return path


def taken_names(workspace: Workspace) -> set[str]:
    """Names listed beside the outputs that live elsewhere (a dataset's own CSV): never reused."""
    return {name for name, path in workspace.csvs.items() if path.parent != workspace.folder}


def reserve_beside(ctx, params: dict, name: str, suffixes: tuple[str, ...]) -> Path:
    """A second file of one output (e.g. its histogram), reserved like the first."""
    return reserve_output(ctx.workdir, name, suffixes, taken=taken_names(params["_workspace"]))


def resolver_for(params: dict, csv_path: Path) -> CellResolver:
    """Reads the files a CSV's cells name, only inside the run's, dataset's or user's folders."""
    workspace: Workspace = params["_workspace"]
    return CellResolver(csv_path.parent, [*workspace.roots, csv_path.parent])


def max_pixels() -> int:
    return settings.NNC_MAX_IMAGE_PIXELS


def display_cell(cell: str, user_root: Path | None) -> str:
    """Absolute paths inside the user's own folder are shown relative to it (never a server path)."""
    if cell.startswith("/"):
        if user_root is not None:
            try:
                return Path(cell).relative_to(user_root).as_posix()
            except ValueError:
                pass
        return Path(cell).name
    return cell


def image_url(url_base: str, display: str, thumb: bool) -> str:
    return f"{url_base}/image/?path={quote(display, safe='')}" + ("&thumb=1" if thumb else "")


def user_root(workspace: Workspace) -> Path | None:
    """The user's own folder: the last root of a run's or dataset's workspace."""
    return workspace.roots[-1].resolve() if workspace.url_base and workspace.roots else None


def record_outputs(job, produced: list[Path]) -> None:
    """The completer of every post-processing plugin (the evaluations app registers how)."""
    RECORDERS["postprocess"](job, produced)
