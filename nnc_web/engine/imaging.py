"""Image loading and NNC's shaping modes (trimming, padding, resize) and channel conversion.

Every mode is expressed as one source-space box that is cropped (PIL fills the part outside the
image with black, which is exactly NNC's zero padding) and resized to the target, so later code
can map annotations through the same box.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nnc_web.engine.atomic import replace_atomically
from nnc_web.engine.reporting import UserError

IMAGE_SUFFIXES = (".bmp", ".jpg", ".jpeg", ".png", ".gif", ".tif", ".tiff")
ALLOWED_FORMATS = {"BMP", "JPEG", "PNG", "GIF", "TIFF", "MPO"}
MODES = ("trimming", "padding", "resize")
DEFAULT_MAX_PIXELS = 100_000_000  # decompression-bomb guard: ~10k x 10k


class ImageRejected(UserError):
    """This file cannot become a dataset image; the message says why."""


@dataclass(frozen=True)
class ShapeBox:
    """Source-space box (may extend past the image = padding) that is resized onto the target."""

    left: int
    top: int
    right: int
    bottom: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.right, self.bottom)

    def fractions(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The box in fractions of the image it was computed for (independent of decode scale)."""
        return (self.left / width, self.top / height, self.right / width, self.bottom / height)


def shape_box(width: int, height: int, target_w: int, target_h: int, mode: str) -> ShapeBox:
    """The source box for NNC's shaping modes, with integer arithmetic so equal aspects stay exact."""
    w, h, tw, th = width, height, target_w, target_h
    if mode == "trimming":
        if h * tw > th * w:  # source is taller than the target aspect: crop rows
            crop_h = w * th // tw
            top = (h - crop_h) // 2
            return ShapeBox(0, top, w, top + crop_h)
        crop_w = h * tw // th
        left = (w - crop_w) // 2
        return ShapeBox(left, 0, left + crop_w, h)
    if mode == "padding":
        if h * tw < th * w:  # source is wider: pad rows above and below
            pad_h = th * w // tw
            top = (pad_h - h) // 2
            return ShapeBox(0, -top, w, pad_h - top)
        pad_w = tw * h // th
        left = (pad_w - w) // 2
        return ShapeBox(-left, 0, pad_w - left, h)
    return ShapeBox(0, 0, w, h)


def open_checked(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image lazily, rejecting non-images, unknown formats and decompression bombs."""
    try:
        with warnings.catch_warnings():
            # Our cap is checked below from the header; Pillow's warning is not the limit we document.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageRejected("image has too many pixels (decompression bomb guard)") from exc
    except Image.DecompressionBombWarning as exc:
        raise ImageRejected("image has too many pixels (decompression bomb guard)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected("not a readable image") from exc
    if image.format not in ALLOWED_FORMATS:
        image.close()
        raise ImageRejected(f"image format {image.format} is not allowed")
    if image.width * image.height > max_pixels:
        image.close()
        raise ImageRejected(
            f"image is {image.width}x{image.height}, over the {max_pixels} pixel limit"
        )
    return image


def to_channels(image: Image.Image, channel: int) -> Image.Image:
    """Convert to 1 (L, ITU-R 601 luma as NNC) or 3 (RGB) channels; 16-bit and palette images too."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8), "L")
    elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Flatten transparency onto black, the same colour the padding mode uses.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    target = "L" if channel == 1 else "RGB"
    return image if image.mode == target else image.convert(target)


def shape_image(image: Image.Image, width: int, height: int, mode: str) -> Image.Image:
    """Apply the shaping mode; images already at the target size are left as they are."""
    if image.size == (width, height):
        return image
    box = shape_box(image.width, image.height, width, height, mode)
    region = image if box.as_tuple() == (0, 0, image.width, image.height) else image.crop(box.as_tuple())
    return region.resize((width, height), Image.Resampling.BILINEAR)


@dataclass(frozen=True)
class Shaped:
    image: Image.Image
    source_size: tuple[int, int]  # before any draft downscale
    fractions: tuple[float, float, float, float]  # the shaping box as fractions of the source


def load_shaped(
    path: Path, width: int, height: int, mode: str, channel: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Shaped:
    """Open, shrink-on-load (JPEG draft), convert channels and shape one image."""
    image = open_checked(path, max_pixels)
    source_size = image.size
    try:
        if image.format in ("JPEG", "MPO"):
            # DCT-domain downscale: decodes at 1/2, 1/4 or 1/8 while staying >= the target size.
            image.draft("L" if channel == 1 else "RGB", (width, height))
        image.load()
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected(f"image data is damaged: {exc}") from exc
    converted = to_channels(image, channel)
    fractions = (0.0, 0.0, 1.0, 1.0)
    if converted.size != (width, height):
        fractions = shape_box(converted.width, converted.height, width, height, mode).fractions(*converted.size)
    return Shaped(shape_image(converted, width, height, mode), source_size, fractions)


def convert_image(
    source: Path, dest: Path, width: int, height: int, mode: str, channel: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Shaped:
    """Convert one file to a shaped PNG at `dest`."""
    shaped = load_shaped(source, width, height, mode, channel, max_pixels)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shaped.image.save(dest, format="PNG", compress_level=1)
    return shaped


def cached_thumbnail(source: Path, cache: Path, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> Path:
    """A small JPEG of `source` at `cache`, made once (again when the source is newer); the source
    is opened with the pixel cap like every image we decode."""
    if not cache.exists() or cache.stat().st_mtime < source.stat().st_mtime:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open_checked(source, max_pixels) as image:
            image.thumbnail((size, size), resample=Image.Resampling.NEAREST if _is_label_mask(image)
                            else Image.Resampling.BICUBIC)
            small = _visible(image).convert("RGB")
        # Beside, then renamed: a request racing this one never caches half a JPEG.
        replace_atomically(cache, lambda path: small.save(path, "JPEG", quality=85))
    return cache


def _is_label_mask(image: Image.Image) -> bool:
    """A grayscale image whose values are a few small class ids (0/1 defect masks, segmentation labels)."""
    if image.mode not in ("L", "I", "I;16"):
        return False
    low, high = image.getextrema()
    return 0 < high <= 20 and low >= 0


def _visible(image: Image.Image) -> Image.Image:
    """Label masks stretched to full contrast for a thumbnail (a 0/1 mask is black to the eye)."""
    if not _is_label_mask(image):
        return image
    scale = 255 // image.getextrema()[1]
    return image.convert("L").point(lambda value: min(255, value * scale))


def prune_thumbnails(root: Path) -> int:
    """Remove the cached thumbnails under `root/.thumbs` whose source is gone (a deleted run, dataset or
    upload); returns how many. A cache entry `<key>.jpg` stands for `root/<key>`, or for `/<key>` when the
    source lay outside `root` (see `evaluations.services.cell_thumbnail`)."""
    cache = root / ".thumbs"
    if not cache.is_dir():
        return 0
    removed = 0
    for entry in sorted(cache.rglob("*.jpg")):
        key = entry.relative_to(cache).as_posix().removesuffix(".jpg")
        if not (root / key).exists() and not (Path("/") / key).exists():
            entry.unlink(missing_ok=True)
            removed += 1
    for folder in sorted((p for p in cache.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()  # only empty ones
        except OSError:
            pass
    return removed
