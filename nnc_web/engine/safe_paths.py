"""The one helper through which every user-influenced path is resolved."""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from nnc_web.engine.errors import UserError


class UnsafePathError(UserError):
    """A path would point outside the folder it must stay in."""


def clean_relative(name: str) -> PurePosixPath:
    """Normalise an archive/CSV path to a relative POSIX path; reject absolute paths and `..`."""
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":") or "\x00" in text:
        raise UnsafePathError(f"absolute path not allowed: {name!r}")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafePathError(f"path escapes its folder: {name!r}")
    if not parts:
        raise UnsafePathError(f"empty path: {name!r}")
    return PurePosixPath(*parts)


def safe_join(root: Path | str, name: str) -> Path:
    """Join `name` under `root`, refusing anything (incl. symlinks) that resolves outside it."""
    root_path = Path(root).resolve()
    candidate = (root_path / clean_relative(name)).resolve()
    if candidate != root_path and root_path not in candidate.parents:
        raise UnsafePathError(f"path escapes its folder: {name!r}")
    return candidate


def is_within(root: Path | str, path: Path | str) -> bool:
    root_path = Path(root).resolve()
    target = Path(os.path.realpath(path))
    return target == root_path or root_path in target.parents
