"""YOLO v2 detection dataset conversion: ours (all cores + JPEG shrink-on-load) vs a single-process
loop doing the same work (shape, warp boxes, build and save the label/region grids), same run.

    .venv/bin/python benchmarks/detection_conversion.py [--count 2000]

Target: ratio >= 1.8 on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.photos import write_photo_folders  # noqa: E402
from nnc_web.engine.classification_dataset import ShapingParams  # noqa: E402
from nnc_web.engine.dataset_outputs import OutputSpec  # noqa: E402
from nnc_web.engine.detection import (  # noqa: E402
    kmeans_anchors,
    read_yolo_labels,
    save_grid_csv,
    warp_box,
    yolo_targets,
)
from nnc_web.engine.detection_dataset import DetectionParams, build_detection_datasets  # noqa: E402
from nnc_web.engine.imaging import shape_box  # noqa: E402
from nnc_web.engine.reporting import ConsoleReporter  # noqa: E402


def add_labels(root: Path, seed: int = 0) -> None:
    rng = random.Random(seed)
    for image in root.rglob("*.jpg"):
        lines = [f"{rng.randrange(4)} {rng.uniform(0.2, 0.8):.4f} {rng.uniform(0.2, 0.8):.4f} "
                 f"{rng.uniform(0.05, 0.4):.4f} {rng.uniform(0.05, 0.4):.4f}" for _ in range(rng.randint(1, 4))]
        image.with_suffix(".txt").write_text("\n".join(lines) + "\n")


def baseline(source: Path, out: Path, size: int, grid: int) -> int:
    images = sorted(source.rglob("*.jpg"))
    labels = [read_yolo_labels(p.with_suffix(".txt"), 4).boxes for p in images]
    anchors = kmeans_anchors(np.array([(b.w, b.h) for bs in labels for b in bs]), 5)
    for path, boxes in zip(images, labels, strict=True):
        with Image.open(path) as image:
            image = image.convert("RGB")
            box = shape_box(image.width, image.height, size, size, "trimming")
            shaped = image.crop(box.as_tuple()).resize((size, size), Image.BILINEAR)
            target = out / path.relative_to(source).with_suffix("")
            target.parent.mkdir(parents=True, exist_ok=True)
            shaped.save(f"{target}.png", "PNG", compress_level=1)
            warped = [w for w in (warp_box(b, box.fractions(image.width, image.height)) for b in boxes) if w]
            label, region = yolo_targets(warped, anchors, size // grid, size // grid)
            save_grid_csv(Path(f"{target}_label.csv"), label, "%d")
            save_grid_csv(Path(f"{target}_region.csv"), region, "%f")
    return len(images)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nnc-det-bench-"))
    try:
        source = write_photo_folders(root / "photos", args.count)
        add_labels(source)
        print(f"made {args.count} JPEGs of 640x480 with 1-4 boxes each; cores={os.cpu_count()}")
        start = time.perf_counter()
        done = baseline(source, root / "base", 224, 16)
        base_rate = done / (time.perf_counter() - start)
        params = DetectionParams(ShapingParams(224, 224, "trimming", 3), num_class=4, grid_size=16)
        start = time.perf_counter()
        (built,) = build_detection_datasets(source, root / "ours", params, [OutputSpec("train", 100)], True, 0,
                                            ["a", "b", "c", "d"], ConsoleReporter(root / "ours", quiet=True))
        our_rate = built.rows / (time.perf_counter() - start)
        print(f"RESULT baseline_images_per_s={base_rate:.1f}")
        print(f"RESULT ours_images_per_s={our_rate:.1f}")
        print(f"RESULT ratio={our_rate / base_rate:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
