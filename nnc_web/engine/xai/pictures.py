"""The pictures of the explanation plugins, as NNC draws them: Grad-CAM's 50/50 jet overlay, LIME's
kept segments on grey 192, SHAP's red (positive) / blue (negative) over a faint grey image, and
SmoothGrad's grey map. Inputs are uint8 (H, W, 3) pixels as the model sees them."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from isal import isal_zlib
from PIL import Image

from nnc_web.engine.atomic import replace_atomically

LIME_GREY = 192
SHAP_RED = np.array([255, 13, 87], dtype=np.float64)  # shap's colours, as NNC's plot uses them
SHAP_BLUE = np.array([30, 136, 229], dtype=np.float64)
SHAP_GREY_ALPHA = 0.15  # the grey image under the map, on white
LUMA = np.array([0.2989, 0.5870, 0.1140])
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def jet(values: np.ndarray) -> np.ndarray:
    """NNC's piecewise-linear jet of [0, 1] values: dark blue, blue, cyan, yellow, red, dark red, with
    breaks at 1/8, 3/8, 5/8, 7/8 -> uint8 (..., 3). Channel by channel (red, green, blue centred at
    4v = 3, 2, 1), in place: NumPy's loops over a last axis of 3 cost twice as much, for the same floats."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    v *= np.float32(4.0)
    out = np.empty(v.shape + (3,), dtype=np.uint8)
    level = np.empty_like(v)
    for channel, centre in enumerate((3.0, 2.0, 1.0)):
        np.subtract(v, np.float32(centre), out=level)
        np.abs(level, out=level)
        np.subtract(np.float32(1.5), level, out=level)
        np.clip(level, 0.0, 1.0, out=level)
        level *= np.float32(255)
        out[..., channel] = np.round(level, out=level)
    return out


def gradcam_overlay(pixels: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """50 % jet heat map + 50 % image (NNC's Grad-CAM picture): (a + b + 1) // 2, half of the sum rounded
    half up, as (a | b) - ((a ^ b) >> 1) in uint8 (a + b = 2 (a | b) - (a ^ b): no wider copies)."""
    heat, image = jet(cam), _rgb(pixels).astype(np.uint8, copy=False)
    return (heat | image) - ((heat ^ image) >> 1)


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
    """An 8-bit PNG, written beside and renamed so that a reader (or a job stopped mid-write) never finds
    half a picture. Grey and RGB pictures (all the explanations draw) go through `encode_png`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        data = encode_png(array)
        replace_atomically(path, lambda partial: partial.write_bytes(data))
        return path
    picture = Image.fromarray(array)
    replace_atomically(path, lambda partial: picture.save(partial, format="PNG", compress_level=1))
    return path


def encode_png(array: np.ndarray) -> bytes:
    """uint8 grey (H, W) or RGB (H, W, 3) as PNG bytes, fast (batch jobs write one per row): every row
    `Up`-filtered (minus the row above) in one NumPy pass, deflated by ISA-L (`isal`, level 1), which
    on these pictures makes zlib's level-1 sizes 5-6x faster. Pillow tries four filters on every row in
    C loops, which costs more than the deflating: on the 2-core box a 224 px overlay on textured noise
    takes 11 ms there, 3 ms with zlib's run-length strategy and under 1 ms here, at the same size
    (benchmarks/xai.py --png)."""
    height, width = array.shape[:2]
    rows = np.ascontiguousarray(array).reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # the row's filter type: Up (the first row's "above" is zeros)
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as PNG's filters are
    data = isal_zlib.compress(filtered, 1)  # a zlib stream, what IDAT holds
    colour_type = 0 if array.ndim == 2 else 2  # grey or RGB, 8 bits, no interlacing
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _rgb(pixels: np.ndarray) -> np.ndarray:
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels
