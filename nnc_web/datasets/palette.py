"""Class colours, shared by mask overlays (drawn here) and the browser (boxes, legends)."""
from __future__ import annotations

import numpy as np

COLOURS = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
           "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3"]


def palette(count: int) -> list[str]:
    return [COLOURS[i % len(COLOURS)] for i in range(count)]


def overlay_rgba(mask: np.ndarray, alpha: int = 140) -> np.ndarray:
    """An RGBA image colouring each class id; id 255 (ignore) stays transparent."""
    table = np.zeros((256, 4), np.uint8)
    for i in range(255):
        hex_colour = COLOURS[i % len(COLOURS)]
        table[i] = (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16), alpha)
    return table[mask]


DEFECT_COLOUR = (214, 39, 40)  # the anomalous red of the anomaly evaluation's charts
ANOMALY_COLOURS = ("#1f77b4", "#d62728")  # normal, anomalous: as the anomaly evaluation draws them


def defect_overlay_rgba(mask: np.ndarray, alpha: int = 150) -> np.ndarray:
    """An anomaly mask (0 normal, anything else a defect): only defect pixels are painted."""
    overlay = np.zeros((*mask.shape, 4), np.uint8)
    overlay[mask > 0] = (*DEFECT_COLOUR, alpha)
    return overlay
