"""Real digits (scikit-learn) as NNC train/valid datasets, for the training benchmarks."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nnc_web.engine.classification_dataset import OutputSpec, ShapingParams, build_classification_datasets  # noqa: E402
from nnc_web.engine.reporting import ConsoleReporter  # noqa: E402
from nnc_web.engine.training.data import ClassificationData, load_classification_csv  # noqa: E402
from tests.sample_data import digit_images  # noqa: E402


def digit_datasets(root: Path, per_class: int, size: int = 32) -> tuple[ClassificationData, ClassificationData]:
    for label, images in digit_images(per_class, 10, size=size).items():
        (root / "src" / label).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            image.save(root / "src" / label / f"{i}.png")
    train, valid = build_classification_datasets(
        root / "src", root / "work", ShapingParams(size, size, "resize", 3),
        [OutputSpec("train", 80), OutputSpec("valid", 20)], True, 0, ConsoleReporter(root / "log", quiet=True))
    return (load_classification_csv(train.folder / train.csv_name),
            load_classification_csv(valid.folder / valid.csv_name))
