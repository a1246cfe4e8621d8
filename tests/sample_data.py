"""Real images for tests and benchmarks, made from packaged sources (no downloads)."""
from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def digit_images(per_class: int = 10, classes: int = 3, size: int = 32) -> dict[str, list[Image.Image]]:
    """scikit-learn's 8x8 handwritten digits scaled up to `size` pixels, grouped by class name."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    grouped: dict[str, list[Image.Image]] = {}
    for label in range(classes):
        images = digits.images[digits.target == label][:per_class]
        grouped[str(label)] = [
            Image.fromarray((img / 16.0 * 255).astype(np.uint8), "L").resize((size, size), Image.BILINEAR)
            for img in images
        ]
    return grouped


def write_class_zip(path: Path, grouped: dict[str, list[Image.Image]], top: str | None = None,
                    fmt: str = "PNG", extra: dict[str, bytes] | None = None) -> Path:
    """A zip with one folder per class (optionally inside a single `top` folder)."""
    prefix = f"{top}/" if top else ""
    suffix = ".png" if fmt == "PNG" else ".jpg"
    with zipfile.ZipFile(path, "w") as archive:
        for label, images in grouped.items():
            for i, image in enumerate(images):
                buffer = io.BytesIO()
                image.save(buffer, fmt)
                archive.writestr(f"{prefix}{label}/img_{i:04d}{suffix}", buffer.getvalue())
        for name, data in (extra or {}).items():
            archive.writestr(prefix + name, data)
    return path


def write_class_tar(path: Path, grouped: dict[str, list[Image.Image]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for label, images in grouped.items():
            for i, image in enumerate(images):
                buffer = io.BytesIO()
                image.save(buffer, "PNG")
                info = tarfile.TarInfo(f"{label}/img_{i:04d}.png")
                info.size = buffer.tell()
                buffer.seek(0)
                archive.addfile(info, buffer)
    return path


def photo(name: str = "chelsea") -> Image.Image:
    """A real photo from scikit-image (astronaut, chelsea, coffee, rocket, ...)."""
    from skimage import data

    return Image.fromarray(getattr(data, name)())


def write_yolo_zip(path: Path, count: int = 8, size: tuple[int, int] = (320, 200), classes: int = 2,
                   extra: dict[str, bytes] | None = None, seed: int = 1) -> Path:
    """A zip of images, each with coloured rectangles (colour = class), and their YOLO v2 labels."""
    from PIL import ImageDraw

    colours = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (67, 99, 216)]
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(count):
            w, h = size
            image = Image.new("RGB", size, (20, 20, 20))
            lines = []
            for j in range(1 + i % 2):
                bw, bh = int(rng.integers(30, 70)), int(rng.integers(30, 70))
                x0 = int(rng.integers(70 + j * 80, 70 + j * 80 + 20))
                y0 = int(rng.integers(10, h - 10 - bh))
                cls = (i + j) % classes
                ImageDraw.Draw(image).rectangle([x0, y0, x0 + bw - 1, y0 + bh - 1], fill=colours[cls])
                lines.append(f"{cls} {(x0 + bw / 2) / w:.6f} {(y0 + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}")
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=95)
            archive.writestr(f"images/img{i:03d}.jpg", buffer.getvalue())
            archive.writestr(f"images/img{i:03d}.txt", "\n".join(lines) + "\n")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def texture_crops(count: int, anomalous: bool, size: int = 224, seed: int = 0, normal: str = "brick",
                  defect: str = "grass") -> list[tuple[Image.Image, Image.Image]]:
    """(RGB crop, mask) pairs from scikit-image's real textures: crops of `normal`, and with
    `anomalous` a pasted square (a sixth to a quarter of the crop) of `defect`; the mask is 255
    where the pasted texture is."""
    from skimage import data

    rng = np.random.default_rng(seed)
    base, other = getattr(data, normal)(), getattr(data, defect)()
    pairs = []
    for _ in range(count):
        top, left = rng.integers(0, base.shape[0] - size, 2)
        crop = base[top:top + size, left:left + size].copy()
        mask = np.zeros((size, size), np.uint8)
        if anomalous:
            side = int(rng.integers(size // 6, size // 4 + 1))
            y, x = rng.integers(0, size - side, 2)
            sy, sx = rng.integers(0, other.shape[0] - side, 2)
            crop[y:y + side, x:x + side] = other[sy:sy + side, sx:sx + side]
            mask[y:y + side, x:x + side] = 255
        pairs.append((Image.fromarray(crop).convert("RGB"), Image.fromarray(mask, "L")))
    return pairs


def write_texture_set(folder: Path, train: int = 24, good: int = 10, bad: int = 10, size: int = 224,
                      seed: int = 0) -> dict:
    """Files for an anomaly test: normal training crops, then test crops (good, then with a pasted
    defect) with their masks. Returns the paths, labels and mask paths."""
    folder.mkdir(parents=True, exist_ok=True)
    result: dict[str, list] = {"train": [], "test": [], "labels": [], "masks": []}
    for number, (image, _) in enumerate(texture_crops(train, False, size, seed)):
        result["train"].append(folder / f"train_{number:03d}.png")
        image.save(result["train"][-1])
    test = texture_crops(good, False, size, seed + 1) + texture_crops(bad, True, size, seed + 2)
    for number, (image, mask) in enumerate(test):
        result["test"].append(folder / f"test_{number:03d}.png")
        result["masks"].append(folder / f"test_{number:03d}_mask.png")
        image.save(result["test"][-1])
        mask.save(result["masks"][-1])
        result["labels"].append(int(number >= good))
    return result


def write_mvtec_zip(path: Path, train: int = 24, good: int = 10, bad: int = 10, size: int = 224,
                    seed: int = 0) -> Path:
    """The texture set in MVTec AD's layout: train/good, test/good, test/grass, ground_truth/grass."""
    test = texture_crops(good, False, size, seed + 1) + texture_crops(bad, True, size, seed + 2)
    with zipfile.ZipFile(path, "w") as archive:
        def put(name: str, image: Image.Image) -> None:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            archive.writestr(f"brick/{name}", buffer.getvalue())

        for number, (image, _) in enumerate(texture_crops(train, False, size, seed)):
            put(f"train/good/{number:03d}.png", image)
        for number, (image, mask) in enumerate(test):
            if number < good:
                put(f"test/good/{number:03d}.png", image)
            else:
                put(f"test/grass/{number:03d}.png", image)
                put(f"ground_truth/grass/{number:03d}_mask.png", mask)
    return path
