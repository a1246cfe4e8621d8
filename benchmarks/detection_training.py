"""Our detector's epoch time against a bare PyTorch loop over the same model, data and loss (target
ratio <= 1.10), and the validation mAP@0.5 after N epochs, on the synthetic shapes set of the tests.

    .venv/bin/python benchmarks/detection_training.py [--epochs 6] [--images 64] [--size 64]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nnc_web.engine.classification_dataset import ShapingParams  # noqa: E402
from nnc_web.engine.dataset_outputs import OutputSpec  # noqa: E402
from nnc_web.engine.detection_dataset import DetectionParams, build_detection_datasets  # noqa: E402
from nnc_web.engine.detection_training.data import load_detection_csv  # noqa: E402
from nnc_web.engine.detection_training.model import STRIDE, CenterNetDetector  # noqa: E402
from nnc_web.engine.detection_training.targets import batch_targets, detection_loss  # noqa: E402
from nnc_web.engine.detection_training.trainer import DetectionTrainer, loader  # noqa: E402
from nnc_web.engine.reporting import ConsoleReporter  # noqa: E402
from nnc_web.engine.training.trainer import TrainConfig  # noqa: E402
from tests.engine.test_detection_training import NAMES, shapes_source  # noqa: E402


def bare_epoch_seconds(train, config: TrainConfig, device: torch.device) -> float:
    """The same model, loader and loss, without checkpoints, metrics, validation or progress."""
    torch.manual_seed(config.seed)
    model = CenterNetDetector(len(NAMES)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    started = time.monotonic()
    for images, boxes in loader(train, config.input_size, config, augment=True, epoch=1):
        loss = detection_loss(model(images.to(device)), batch_targets(boxes, len(NAMES), config.input_size // STRIDE,
                                                                      device))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shapes_source(root / "src", args.images)
        params = DetectionParams(ShapingParams(args.size, args.size, "resize", 3), 3, 4, "centernet")
        reporter = ConsoleReporter(root / "log", quiet=True)
        built = build_detection_datasets(root / "src", root / "work", params,
                                         [OutputSpec("train", 75), OutputSpec("valid", 25)], True, 0, NAMES, reporter)
        train, valid = (load_detection_csv(b.folder / b.csv_name) for b in built)
        config = TrainConfig(max_epoch=args.epochs, batch_size=8, learning_rate=2e-3, schedule="cosine",
                             input_size=args.size, augmentation=["flip", "translate", "scale"], device="auto")
        trainer = DetectionTrainer(train, valid, NAMES, config, root / "run", reporter)
        result = trainer.run()
        # the trainer's epoch includes its validation pass; the training part is compared with the bare loop
        ours = min(h["seconds"] for h in result.history)
        bare = min(bare_epoch_seconds(train, config, trainer.device) for _ in range(2))
        print(f"RESULT detection epoch_seconds ours={ours:.2f} bare={bare:.2f} ratio={ours / bare:.2f} "
              f"(ours includes validation) load={os.getloadavg()[0]:.1f}")
        print(f"RESULT detection valid_map50_after_{args.epochs}_epochs={result.history[-1]['valid_map50']:.3f} "
              f"best={max(h['valid_map50'] for h in result.history):.3f}")


if __name__ == "__main__":
    main()
