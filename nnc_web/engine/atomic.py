"""Replace a file whole or not at all."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`write(temporary)` next to `path`, then rename it over `path`: a process killed mid-write (a
    worker dying while it saves a checkpoint) leaves the previous file intact instead of a truncated one."""
    partial = path.with_name(path.name + ".partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
