"""Image-classification conversion speed: ours (all cores + JPEG shrink-on-load) vs a plain
single-process Pillow loop doing the same shaping, in the same run.

    .venv/bin/python benchmarks/dataset_conversion.py [--count 2000]

Prints `RESULT key=value` lines; the ratio (ours / baseline images per second) comes last per mode.
Target: ratio >= 1.8 on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from benchmarks.photos import write_photo_folders  # noqa: E402
from nnc_web.engine.classification_dataset import (  # noqa: E402
    OutputSpec,
    ShapingParams,
    build_classification_datasets,
)
from nnc_web.engine.imaging import shape_box  # noqa: E402
from nnc_web.engine.reporting import ConsoleReporter  # noqa: E402


def baseline(source: Path, out: Path, size: int, mode: str) -> int:
    """What a person writes first: open, convert, crop/pad, resize, save - one image at a time."""
    count = 0
    for folder in sorted(source.iterdir()):
        for file in sorted(folder.iterdir()):
            with Image.open(file) as image:
                image = image.convert("RGB")
                box = shape_box(image.width, image.height, size, size, mode)
                shaped = image.crop(box.as_tuple()).resize((size, size), Image.BILINEAR)
                target = out / folder.name / f"{file.stem}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                shaped.save(target, "PNG", compress_level=1)
                count += 1
    return count


def ours(source: Path, work: Path, size: int, mode: str) -> int:
    reporter = ConsoleReporter(work, quiet=True)
    built = build_classification_datasets(source, work, ShapingParams(size, size, mode, 3),
                                          [OutputSpec("train", 100)], shuffle=True, seed=0, reporter=reporter)
    return built[0].rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nnc-bench-"))
    try:
        start = time.perf_counter()
        source = write_photo_folders(root / "photos", args.count)
        print(f"made {args.count} JPEGs of 640x480 in {time.perf_counter() - start:.1f} s; cores={os.cpu_count()}")
        for mode in ("trimming", "padding", "resize"):
            start = time.perf_counter()
            done = baseline(source, root / f"base-{mode}", args.size, mode)
            base_rate = done / (time.perf_counter() - start)
            start = time.perf_counter()
            done = ours(source, root / f"ours-{mode}", args.size, mode)
            our_rate = done / (time.perf_counter() - start)
            print(f"RESULT {mode}_baseline_images_per_s={base_rate:.1f}")
            print(f"RESULT {mode}_ours_images_per_s={our_rate:.1f}")
            print(f"RESULT {mode}_ratio={our_rate / base_rate:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
