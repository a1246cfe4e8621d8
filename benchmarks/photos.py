"""Real photos for benchmarks: crops of scikit-image / scikit-learn sample photos saved as ~640x480 JPEGs."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image


def source_photos() -> list[Image.Image]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(getattr(data, name)()).convert("RGB")
              for name in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")]
    photos += [Image.fromarray(np.asarray(img)) for img in load_sample_images().images]
    return photos


def write_photo_folders(root: Path, count: int, classes: int = 4, seed: int = 0) -> Path:
    """`count` JPEGs of 640x480 (random crops, flips) in `classes` class folders."""
    rng = random.Random(seed)
    photos = source_photos()
    for i in range(count):
        photo = photos[i % len(photos)]
        w, h = photo.size
        cw, ch = rng.randint(w // 2, w), rng.randint(h // 2, h)
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        image = photo.crop((left, top, left + cw, top + ch)).resize((640, 480), Image.BILINEAR)
        if rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"photo_{i:05d}.jpg", "JPEG", quality=90)
    return root
