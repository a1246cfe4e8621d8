"""NNC's Parameter Stats (§3.2): size and value statistics of every tensor of a model's weights."""
from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from nnc_web.engine.reporting import UserError

COLUMNS = ["name", "shape", "size", "max", "min", "max_abs", "min_abs", "mean", "stdev"]


def bundle_weight_files(folder: Path) -> list[Path]:
    """Every .safetensors file of a model bundle (classifier bundles have one; others may have more)."""
    files = sorted(p for p in Path(folder).glob("*.safetensors") if p.is_file())
    if not files:
        raise UserError("this model has no weights file (.safetensors)")
    return files


def stored_names(path: Path) -> list[str]:
    """Tensor names in the order of the file's JSON header. NNC walks the parameters in registration
    order; we report the order the bundle stored them in (safetensors sorts by dtype, then name)."""
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
    except (OSError, struct.error, ValueError) as exc:
        raise UserError(f"{path.name}: not a readable safetensors file") from exc
    return [name for name in header if name != "__metadata__"]


def shape_text(shape: tuple[int, ...]) -> str:
    return " x ".join(str(d) for d in shape) if shape else "1"


def tensor_stats(name: str, values: np.ndarray) -> dict:
    flat = values.astype(np.float64, copy=False).ravel()
    row: dict = {"name": name, "shape": shape_text(values.shape), "size": int(flat.size)}
    if flat.size == 0:  # an empty tensor has no statistics: leave the cells blank
        return row | dict.fromkeys(COLUMNS[3:], "")
    magnitude = np.abs(flat)
    return row | {"max": float(flat.max()), "min": float(flat.min()), "max_abs": float(magnitude.max()),
                  "min_abs": float(magnitude.min()), "mean": float(flat.mean()), "stdev": float(flat.std())}


def parameter_stats(weights_path: Path | list[Path]) -> list[dict]:
    """One dict per tensor, in file order; with several files, names are prefixed `<file stem>/`."""
    paths = [Path(p) for p in weights_path] if isinstance(weights_path, list) else [Path(weights_path)]
    stats = []
    for path in paths:
        prefix = f"{path.stem}/" if len(paths) > 1 else ""
        names = stored_names(path)
        try:
            with safe_open(str(path), framework="pt") as handle:
                for name in names:
                    # via torch: bfloat16 has no numpy dtype; integer counters are cast like the rest.
                    tensor = handle.get_tensor(name).to(torch.float64)
                    stats.append(tensor_stats(prefix + name, tensor.numpy()))
        except (OSError, SafetensorError) as exc:
            raise UserError(f"{path.name}: not a readable safetensors file") from exc
    return stats


def write_parameter_stats(path: Path, stats: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([row[column] for column in COLUMNS] for row in stats)
