"""The pictures of the explanation plugins, as NNC draws them: Grad-CAM's 50/50 jet overlay, LIME's
kept segments on grey 192, SHAP's red (positive) / blue (negative) over a faint grey image, and
SmoothGrad's grey map. Inputs are uint8 (H, W, 3) pixels as the model sees them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from nnc_web.engine.atomic import replace_atomically

LIME_GREY = 192
SHAP_RED = np.array([255, 13, 87], dtype=np.float64)  # shap's colours, as NNC's plot uses them
SHAP_BLUE = np.array([30, 136, 229], dtype=np.float64)
SHAP_GREY_ALPHA = 0.15  # the grey image under the map, on white
LUMA = np.array([0.2989, 0.5870, 0.1140])


def jet(values: np.ndarray) -> np.ndarray:
    """NNC's piecewise-linear jet of [0, 1] values: dark blue, blue, cyan, yellow, red, dark red, with
    breaks at 1/8, 3/8, 5/8, 7/8 -> uint8 (..., 3)."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)[..., None] * np.float32(4.0)
    rgb = np.clip(np.float32(1.5) - np.abs(v - np.array([3.0, 2.0, 1.0], dtype=np.float32)), 0.0, 1.0)
    return np.round(rgb * np.float32(255)).astype(np.uint8)


def gradcam_overlay(pixels: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """50 % jet heat map + 50 % image (NNC's Grad-CAM picture)."""
    total = jet(cam).astype(np.uint16) + _rgb(pixels).astype(np.uint16)
    return ((total + 1) // 2).astype(np.uint8)  # half of the sum, rounded half up


def lime_picture(pixels: np.ndarray, segments: np.ndarray, kept: list[int]) -> np.ndarray:
    """The image where its `kept` segments are, grey 192 elsewhere (a grey input stays grey)."""
    out = np.full_like(pixels, LIME_GREY)
    mask = np.isin(segments, kept)
    out[mask] = pixels[mask]
    return out


def shap_picture(pixels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values (H, W), summed over channels, in red where positive and blue where negative, opaque at
    +-the 99.9th percentile of |value| and transparent at 0, over the image's grey at alpha 0.15."""
    grey = _rgb(pixels).astype(np.float64) @ LUMA
    base = (1 - SHAP_GREY_ALPHA) * 255.0 + SHAP_GREY_ALPHA * grey
    limit = float(np.percentile(np.abs(values), 99.9))
    scaled = np.clip(values / limit, -1.0, 1.0) if limit > 0 else np.zeros_like(values, dtype=np.float64)
    alpha = np.abs(scaled)[..., None]
    colour = np.where(scaled[..., None] >= 0, SHAP_RED, SHAP_BLUE)
    out = (1 - alpha) * base[..., None] + alpha * colour
    return np.round(out).astype(np.uint8)


def smoothgrad_picture(values: np.ndarray) -> np.ndarray:
    """|gradient| summed over channels (H, W) clipped between its 1st and 99th percentiles -> uint8 grey."""
    low, high = np.percentile(values, [1, 99])
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((np.clip(values, low, high) - low) / (high - low) * 255).astype(np.uint8)


def save_png(array: np.ndarray, path: Path) -> Path:
    """An 8-bit PNG (fast compression: batch jobs write one per row), written beside and renamed so
    that a reader (or a job stopped mid-write) never finds half a picture."""
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(array)
    replace_atomically(path, lambda partial: picture.save(partial, format="PNG", compress_level=1))
    return path


def _rgb(pixels: np.ndarray) -> np.ndarray:
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels
