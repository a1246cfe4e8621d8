"""Server-side data: folders that staff configured in NNC_IMPORT_DIRS, usable as a plugin's source
instead of an upload (for data already on the machine). Paths are `<root name>/<relative path>`."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings

from nnc_web.datasets.services import UPLOAD_SUFFIXES
from nnc_web.engine.reporting import UserError
from nnc_web.engine.safe_paths import is_within, safe_join


def import_roots() -> dict[str, Path]:
    """Configured folders by display name (their base name; repeated names get a number)."""
    roots: dict[str, Path] = {}
    for raw in settings.NNC_IMPORT_DIRS:
        path = Path(raw).expanduser().resolve()
        if not path.is_dir():
            continue
        name, counter = path.name or "root", 2
        while name in roots:
            name, counter = f"{path.name}-{counter}", counter + 1
        roots[name] = path
    return roots


def resolve_import(value: str) -> Path:
    """`<root>/<relative>` -> an existing folder or supported file inside that root."""
    root_name, _, relative = value.strip("/").partition("/")
    roots = import_roots()
    if root_name not in roots:
        raise UserError("no such server folder")
    path = safe_join(roots[root_name], relative) if relative else roots[root_name]
    if not path.exists():
        raise UserError(f"{value} does not exist")
    if path.is_file() and not path.name.lower().endswith(UPLOAD_SUFFIXES):
        raise UserError("choose a folder, an archive or a CSV file")
    return path


def list_imports(value: str = "") -> dict:
    """The roots (no value), or the entries of one folder inside a root."""
    if not value.strip("/"):
        return {"path": "", "entries": [{"path": name, "name": name, "kind": "folder"} for name in import_roots()]}
    folder = resolve_import(value)
    if not folder.is_dir():
        raise UserError("not a folder")
    root = import_roots()[value.strip("/").partition("/")[0]]
    entries = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not is_within(root, entry):  # links out of the root stay hidden
            continue
        if entry.is_dir():
            kind, size = "folder", None
        elif entry.name.lower().endswith(UPLOAD_SUFFIXES):
            kind, size = "file", entry.stat().st_size
        else:
            continue
        entries.append({"path": f"{value.strip('/')}/{entry.name}", "name": entry.name, "kind": kind, "size": size})
    return {"path": value.strip("/"), "entries": entries}
