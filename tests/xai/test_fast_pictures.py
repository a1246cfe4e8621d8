"""The batch writer's fast paths draw and encode exactly what the straightforward code did: the jet and
the 50/50 overlay bit for bit (values on every rounding boundary), `to_pixels` as torch's ops give it,
and PNGs that decode (CRCs checked) to the same pixels at no more than Pillow's size."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from nnc_web.engine.xai import pictures
from nnc_web.engine.xai.classifier import to_pixels


def reference_jet(values: np.ndarray) -> np.ndarray:
    """The jet as first written (one broadcast over the three channels)."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)[..., None] * np.float32(4.0)
    rgb = np.clip(np.float32(1.5) - np.abs(v - np.array([3.0, 2.0, 1.0], dtype=np.float32)), 0.0, 1.0)
    return np.round(rgb * np.float32(255)).astype(np.uint8)


def boundary_values() -> np.ndarray:
    """Float32 values where a jet channel's 255 x level is a half-integer, and their neighbours."""
    values = []
    for centre in (1, 2, 3):
        for step in range(256):
            for side in (1, -1):
                x = np.float32((centre + side * (1.5 - (step + 0.5) / 255)) / 4)
                values += [np.nextafter(x, np.float32(-1)), x, np.nextafter(x, np.float32(2))]
    rng = np.random.default_rng(0)
    return np.concatenate([np.array(values, dtype=np.float32), rng.random(20_000, dtype=np.float32),
                           np.array([-1, -0.0, 0, 1 / 8, 3 / 8, 5 / 8, 7 / 8, 1, 2], dtype=np.float32)])


def test_jet_and_overlay_equal_the_reference_bit_for_bit():
    values = boundary_values()
    assert (pictures.jet(values) == reference_jet(values)).all()
    assert (pictures.jet(values.astype(np.float64)) == reference_jet(values.astype(np.float64))).all()
    square = values[:len(values) // 9 * 9].reshape(-1, 9)
    assert pictures.jet(square).shape == square.shape + (3,)
    assert (pictures.jet(square) == reference_jet(square)).all()
    # every pair of uint8 values: (a + b + 1) // 2
    a, b = np.meshgrid(np.arange(256), np.arange(256))
    heat = np.stack([a, b, a], axis=-1).astype(np.uint8)
    image = np.stack([b, a, 255 - a], axis=-1).astype(np.uint8)
    cam = np.linspace(0, 1, 256 * 256, dtype=np.float32).reshape(256, 256)
    expected = (reference_jet(cam).astype(int) + image.astype(int) + 1) // 2
    assert (pictures.gradcam_overlay(image, cam) == expected).all()
    assert (((heat.astype(int) + image.astype(int) + 1) // 2) == (heat | image) - ((heat ^ image) >> 1)).all()
    grey = image[..., 0]
    assert (pictures.gradcam_overlay(grey, cam) == (reference_jet(cam).astype(int) + grey[..., None] + 1) // 2).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_to_pixels_gives_torchs_bytes(dtype):
    halves = torch.tensor([(n + 0.5) / 255 for n in range(255)], dtype=dtype)
    edges = torch.cat([halves, torch.nextafter(halves, torch.tensor(2.0, dtype=dtype)),
                       torch.nextafter(halves, torch.tensor(-1.0, dtype=dtype)), torch.linspace(-0.2, 1.2, 300, dtype=dtype)])
    unit = edges[: len(edges) // 3 * 3].reshape(3, 1, -1).requires_grad_()
    expected = (unit.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    got = to_pixels(unit)
    assert got.dtype == np.uint8 and got.shape == expected.shape and (got == expected).all()
    assert got.flags.c_contiguous  # the pictures drawn from it run 4x slower on a transposed view
    levels = torch.arange(256, dtype=torch.float32) * np.float32(1 / 255)  # what `unit` makes of 8-bit pixels
    assert to_pixels(levels.reshape(1, 1, 256).expand(3, 1, 256))[0, :, 0].tolist() == list(range(256))


@pytest.mark.parametrize("shape", [(224, 224, 3), (1, 1, 3), (1, 9, 3), (7, 1, 3), (33, 17), (1, 1), (5, 300)])
def test_encode_png_decodes_to_the_same_pixels(shape):
    rng = np.random.default_rng(1)
    for array in (rng.integers(0, 256, shape, dtype=np.uint8), np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8)):
        data = pictures.encode_png(array)
        Image.open(io.BytesIO(data)).verify()  # chunk CRCs
        decoded = Image.open(io.BytesIO(data))
        assert decoded.mode == ("RGB" if array.ndim == 3 else "L") and decoded.size == (shape[1], shape[0])
        assert (np.asarray(decoded) == array).all()


def test_saved_overlays_are_no_larger_than_pillows(tmp_path):
    """Smooth, textured and mostly flat pictures, against Pillow at compress_level 1 (the former way)."""
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:224, 0:224]
    smooth = np.stack([x, y, (x + y) // 2], axis=-1).astype(np.uint8)
    textured = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
    flat = np.where((abs(x - 112) < 30) & (abs(y - 112) < 60), 255, 0).astype(np.uint8)  # a grey "digit"
    cam = np.exp(-((x - 100) ** 2 + (y - 80) ** 2) / 3000.0).astype(np.float32)
    for pixels in (smooth, textured, flat):
        overlay = pictures.gradcam_overlay(pixels, cam)
        path = pictures.save_png(overlay, tmp_path / "sub" / "o.png")
        assert (np.asarray(Image.open(path)) == overlay).all() and not list(path.parent.glob("*.partial"))
        former = io.BytesIO()
        Image.fromarray(overlay).save(former, format="PNG", compress_level=1)
        assert path.stat().st_size <= 1.02 * len(former.getvalue())
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # other layouts still go through Pillow
    assert Image.open(pictures.save_png(rgba, tmp_path / "rgba.png")).mode == "RGBA"
