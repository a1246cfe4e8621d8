"""Our detector's and our segmenter's epoch time against a bare PyTorch loop over the same model, data,
loss and batch (target ratio <= 1.10), and the validation mAP@0.5 / mean IoU after N epochs, on the
synthetic sets of the tests (shapes with boxes; a square and a disc with their masks, 64 px).

    .venv/bin/python benchmarks/detection_training.py [--task both|detection|segmentation] [--epochs 6]
        [--images 64] [--size 64] [--seg-images 48]

Both sides' epoch is the training pass only (the trainers time an epoch before their validation pass); a
bare epoch runs after each of ours, so that both meet the same load; each side's fastest epoch is kept.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nnc_web.engine.classification_dataset import ShapingParams  # noqa: E402
from nnc_web.engine.dataset_outputs import OutputSpec  # noqa: E402
from nnc_web.engine.detection_dataset import DetectionParams, build_detection_datasets  # noqa: E402
from nnc_web.engine.detection_training import trainer as detection_trainer  # noqa: E402
from nnc_web.engine.detection_training.data import load_detection_csv  # noqa: E402
from nnc_web.engine.detection_training.model import STRIDE, CenterNetDetector  # noqa: E402
from nnc_web.engine.detection_training.targets import batch_targets, detection_loss  # noqa: E402
from nnc_web.engine.detection_training.trainer import DetectionTrainer, loader  # noqa: E402
from nnc_web.engine.reporting import ConsoleReporter  # noqa: E402
from nnc_web.engine.segmentation import IGNORE  # noqa: E402
from nnc_web.engine.segmentation_training import trainer as segmentation  # noqa: E402
from nnc_web.engine.segmentation_training.model import LiteSegmenter  # noqa: E402
from nnc_web.engine.training.trainer import TrainConfig, resolve_device  # noqa: E402
from tests.engine import test_segmentation_training as segmentation_set  # noqa: E402
from tests.engine.test_detection_training import NAMES, shapes_source  # noqa: E402


class Interleaved(ConsoleReporter):
    """Runs one bare epoch after each of the trainer's (when it reports `train_loss`, after its timed
    part): both sides see the same load, which on shared cores swings more than the overhead measured."""

    def __init__(self, workdir: Path, bare_epoch) -> None:
        super().__init__(workdir, quiet=True)
        self.bare_epoch, self.bare_seconds = bare_epoch, []

    def metric(self, name: str, step: int, value: float) -> None:
        super().metric(name, step, value)
        if name == "train_loss":
            self.bare_seconds.append(self.bare_epoch(step))


def bare_loop(model: torch.nn.Module, batches, loss_of, learning_rate: float, clock=time.monotonic):
    """A bare epoch of the same model (its own copy, seeded alike), loader, optimizer and loss: without
    checkpoints, metrics, validation, progress or cancel checks."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)

    def epoch(number: int) -> float:
        model.train()
        started = clock()
        for images, targets in batches(number):
            loss = loss_of(model, images, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return clock() - started

    return epoch


def report(task: str, history: list[dict], bare: list[float], images: int, config: TrainConfig) -> None:
    ours, theirs = min(h["seconds"] for h in history), min(bare)  # the fastest epoch: the least disturbed
    print(f"RESULT {task} epoch_seconds ours={ours:.2f} bare={theirs:.2f} ratio={ours / theirs:.2f} "
          f"images={images} batch={config.batch_size} size={config.input_size} epochs={len(history)} "
          f"load={os.getloadavg()[0]:.1f}")
    print(f"  {task} epochs ours={[h['seconds'] for h in history]} bare={[round(b, 3) for b in bare]}")


def detection_half(root: Path, epochs: int, images: int, size: int) -> None:
    shapes_source(root / "src", images)
    params = DetectionParams(ShapingParams(size, size, "resize", 3), 3, 4, "centernet")
    built = build_detection_datasets(root / "src", root / "work", params,
                                     [OutputSpec("train", 75), OutputSpec("valid", 25)], True, 0, NAMES,
                                     ConsoleReporter(root / "log", quiet=True))
    train, valid = (load_detection_csv(b.folder / b.csv_name) for b in built)
    config = TrainConfig(max_epoch=epochs, batch_size=8, learning_rate=2e-3, schedule="cosine",
                         input_size=size, augmentation=["flip", "translate", "scale"], device="auto")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)

    def batches(epoch: int):
        return loader(train, size, config, augment=True, epoch=epoch)

    def loss_of(model, images, boxes):
        return detection_loss(model(images.to(device)), batch_targets(boxes, len(NAMES), size // STRIDE,
                                                                      device))["loss"]

    bare = bare_loop(CenterNetDetector(len(NAMES)).to(device), batches, loss_of, config.learning_rate)
    reporter = Interleaved(root / "log", bare)
    trainer = DetectionTrainer(train, valid, NAMES, config, root / "run", reporter)
    result = trainer.run()
    report("detection", result.history, reporter.bare_seconds, len(train.images), config)
    print(f"RESULT detection valid_map50_after_{epochs}_epochs={result.history[-1]['valid_map50']:.3f} "
          f"best={max(h['valid_map50'] for h in result.history):.3f} valid_images={len(valid.images)}")
    if device.type == "cpu":
        cpu_check("detection", trainer, detection_trainer._State(), lambda: CenterNetDetector(len(NAMES)), batches,
                  loss_of, config, min(epochs, 4))


def segmentation_half(root: Path, epochs: int, images: int) -> None:
    names, size = segmentation_set.NAMES, segmentation_set.SIZE  # the tests' set is drawn at 64 px
    train = segmentation_set.build(root, "train", images, 0)
    valid = segmentation_set.build(root, "valid", max(images // 3, 8), 1)
    config = TrainConfig(max_epoch=epochs, batch_size=8, learning_rate=3e-3, schedule="cosine", input_size=size,
                         augmentation=["flip"], device="auto")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)

    def batches(epoch: int):
        return segmentation.loader(train, size, config, augment=True, epoch=epoch)

    def loss_of(model, images, masks):
        return F.cross_entropy(model(images.to(device)), masks.to(device), ignore_index=IGNORE)

    bare = bare_loop(LiteSegmenter(len(names), config.pretrained).to(device), batches, loss_of, config.learning_rate)
    reporter = Interleaved(root / "seg_log", bare)
    trainer = segmentation.SegmentationTrainer(train, valid, names, config, root / "seg_run", reporter)
    result = trainer.run()
    report("segmentation", result.history, reporter.bare_seconds, len(train.images), config)
    print(f"RESULT segmentation valid_mean_iou_after_{epochs}_epochs={result.history[-1]['valid_mean_iou']:.3f} "
          f"best={max(h['valid_mean_iou'] for h in result.history):.3f} valid_images={len(valid.images)}")
    if device.type == "cpu":
        cpu_check("segmentation", trainer, segmentation._State(), lambda: LiteSegmenter(len(names), config.pretrained),
                  batches, loss_of, config, min(epochs, 4))


def cpu_check(task: str, trainer, state, make_model, batches, loss_of, config: TrainConfig, epochs: int) -> None:
    """The same comparison in CPU seconds of one thread (torch on one thread, the process's only worker):
    what other processes on shared cores do barely moves it, unlike wall time. Ours is the trainer's own
    epoch, the code its `run` times; the two take turns, each on a fresh model seeded alike."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(config.seed)
        model = make_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        torch.manual_seed(config.seed)
        bare = bare_loop(make_model(), batches, loss_of, config.learning_rate, clock=time.thread_time)
        ours, theirs = [], []
        for epoch in range(1, epochs + 1):
            started = time.thread_time()
            trainer._epoch(model, optimizer, epoch, state)
            ours.append(time.thread_time() - started)
            theirs.append(bare(epoch))
    finally:
        torch.set_num_threads(threads)
    print(f"RESULT {task} epoch_cpu_seconds_1_thread ours={min(ours):.2f} bare={min(theirs):.2f} "
          f"ratio={min(ours) / min(theirs):.2f} epochs={epochs}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", choices=["both", "detection", "segmentation"], default="both")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seg-images", type=int, default=48)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.task in ("both", "detection"):
            detection_half(Path(tmp), args.epochs, args.images, args.size)
        if args.task in ("both", "segmentation"):
            segmentation_half(Path(tmp), args.epochs, args.seg_images)


if __name__ == "__main__":
    main()
