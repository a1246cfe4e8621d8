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


def write_bundle(folder: Path, tensors: dict, manifest: dict) -> Path:
    """A model bundle: the weights first, then manifest.json (the "model exists" marker), each
    replaced whole, so a reader never finds a manifest whose weights are missing or half-written."""
    import json

    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    replace_atomically(folder / "weights.safetensors", lambda path: save_file(weights, str(path)))
    replace_atomically(folder / "manifest.json", lambda path: path.write_text(json.dumps(manifest, indent=1)))
    return folder
