"""Training loop of the segmenter: cross-entropy with ignore index 255, flip augmentation moving the
mask with the pixels, a checkpoint each epoch, resume, cancel, the best model by validation mean IoU.
Reports per-step `loss`, per-epoch `train_loss`, `valid_mean_iou`, `valid_overall_accuracy`."""
from __future__ import annotations

import functools
import json
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader

from nnc_web.engine.atomic import replace_atomically
from nnc_web.engine.detection_training.model import BACKBONE
from nnc_web.engine.model_store import get_backbone
from nnc_web.engine.reporting import Reporter, UserError, check_stop
from nnc_web.engine.segmentation import IGNORE
from nnc_web.engine.segmentation_training.data import SegmentationData, SegmentationDataset, check_masks
from nnc_web.engine.segmentation_training.metrics import confusion, segmentation_metrics
from nnc_web.engine.segmentation_training.model import LiteSegmenter
from nnc_web.engine.training.trainer import TrainConfig, resolve_device


def loader(data: SegmentationData, size: int, config: TrainConfig, augment: bool, epoch: int = 0) -> DataLoader:
    spec = get_backbone(BACKBONE)
    seed = config.seed * 1000 + epoch
    dataset = SegmentationDataset(data, size, spec.mean, spec.std, config.augmentation if augment else [], seed)
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=augment,
                      generator=torch.Generator().manual_seed(seed))


def predict_masks(model: LiteSegmenter, data: SegmentationData, size: int, device: torch.device,
                  reporter: Reporter, batch_size: int = 8):
    """Yield (predicted ids (B, size, size), truth ids) per batch."""
    model.eval()
    with torch.no_grad():
        for images, masks in loader(data, size, TrainConfig(batch_size=batch_size), augment=False):
            check_stop(reporter)
            yield model(images.to(device)).argmax(1).cpu().numpy(), masks.numpy()


def evaluate_confusion(model, data: SegmentationData, size: int, device: torch.device, reporter: Reporter,
                       num_classes: int) -> np.ndarray:
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for predicted, truth in predict_masks(model, data, size, device, reporter):
        matrix += confusion(truth, predicted, num_classes)
    return matrix


@dataclass
class SegmentationResult:
    model: LiteSegmenter
    history: list[dict]
    best_epoch: int


@dataclass
class _State:
    epoch: int = 0
    best: float = -1.0
    best_epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)


class SegmentationTrainer:
    def __init__(self, train: SegmentationData, valid: SegmentationData, class_names: list[str], config: TrainConfig,
                 workdir: Path, reporter: Reporter) -> None:
        config.check()
        if not class_names:
            raise UserError("the dataset has no label map (id2label): import it with Semantic segmentation "
                            "(EasyMaker layout)")
        if not train.images:
            raise UserError("the training dataset has no rows")
        check_masks(train, len(class_names), "training")
        check_masks(valid, len(class_names), "validation")
        self.train_data, self.valid_data, self.class_names = train, valid, class_names
        self.config, self.workdir, self.reporter = config, workdir, reporter
        self.size = config.input_size or 256
        if self.size % 32:
            raise UserError(f"input_size must be a multiple of 32 (the backbone's stride), got {self.size}")
        self.device = resolve_device(config.device)
        workdir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path, self.best_path = workdir / "checkpoint.pt", workdir / "best.pt"

    def run(self, resume: bool = False) -> SegmentationResult:
        config = self.config
        torch.manual_seed(config.seed)
        model = LiteSegmenter(len(self.class_names), config.pretrained).to(self.device)
        optimizer = (torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam)(
            model.parameters(), lr=config.learning_rate) if config.optimizer != "sgd" else torch.optim.SGD(
            model.parameters(), lr=config.learning_rate, momentum=0.9)
        scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.max_epoch)
                     if config.schedule == "cosine" else None)
        state = _State()
        if resume and self.checkpoint_path.exists():
            state = self._resume(model, optimizer, scheduler)
        self.reporter.log(f"training LR-ASPP on {BACKBONE} ({self.size} px) on {self.device}: "
                          f"{len(self.train_data.images)} training and {len(self.valid_data.images)} validation "
                          f"images, {len(self.class_names)} classes ({IGNORE} = ignore)")
        for epoch in range(state.epoch + 1, config.max_epoch + 1):
            started = time.monotonic()
            train_loss = self._epoch(model, optimizer, epoch, state)
            if scheduler is not None:
                scheduler.step()
            self._end_epoch(model, optimizer, scheduler, state, epoch, train_loss, time.monotonic() - started)
        if config.save_best and self.best_path.exists():
            model.load_state_dict(torch.load(self.best_path, map_location=self.device, weights_only=True))
            self.reporter.log(f"kept the best model: epoch {state.best_epoch}, valid mean IoU {state.best:.4f}")
        return SegmentationResult(model.eval(), state.history, state.best_epoch)

    def _epoch(self, model, optimizer, epoch: int, state: _State) -> float:
        model.train()
        batches = loader(self.train_data, self.size, self.config, augment=True, epoch=epoch)
        total, seen = 0.0, 0
        for number, (images, masks) in enumerate(batches, start=1):
            check_stop(self.reporter)
            loss = F.cross_entropy(model(images.to(self.device)), masks.to(self.device), ignore_index=IGNORE)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            state.step += 1
            total += loss.item() * len(images)
            seen += len(images)
            self.reporter.metric("loss", state.step, loss.item())
            self.reporter.progress((epoch - 1) * len(batches) + number, self.config.max_epoch * len(batches))
        return total / max(seen, 1)

    def _end_epoch(self, model, optimizer, scheduler, state: _State, epoch: int, train_loss: float,
                   seconds: float) -> None:
        scores = segmentation_metrics(evaluate_confusion(model, self.valid_data, self.size, self.device, self.reporter,
                                                         len(self.class_names)), self.class_names)
        record = {"epoch": epoch, "train_loss": train_loss, "valid_mean_iou": scores["mean_iou"],
                  "valid_overall_accuracy": scores["overall_accuracy"], "seconds": round(seconds, 3)}
        state.history.append(record)
        for name in ("train_loss", "valid_mean_iou", "valid_overall_accuracy"):
            self.reporter.metric(name, epoch, record[name])
        improved = record["valid_mean_iou"] > state.best
        if improved:
            state.best, state.best_epoch = record["valid_mean_iou"], epoch
            if self.config.save_best:
                replace_atomically(self.best_path, functools.partial(torch.save, model.state_dict()))
        self.reporter.log(f"epoch {epoch}/{self.config.max_epoch}: train loss {train_loss:.4f}, valid mean IoU "
                          f"{record['valid_mean_iou']:.4f}{' (best)' if improved else ''} [{seconds:.1f} s]")
        state.epoch = epoch
        checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict() if scheduler is not None else {}, "epoch": epoch,
                      "best": state.best, "best_epoch": state.best_epoch, "step": state.step,
                      "history": json.dumps(state.history)}
        replace_atomically(self.checkpoint_path, functools.partial(torch.save, checkpoint))

    def _resume(self, model, optimizer, scheduler) -> _State:
        try:
            saved = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        except (EOFError, RuntimeError, pickle.UnpicklingError) as exc:
            raise UserError(f"the checkpoint of this run cannot be read ({type(exc).__name__}): start a new "
                            f"run") from exc
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None and saved.get("scheduler"):
            scheduler.load_state_dict(saved["scheduler"])
        self.reporter.log(f"resuming after epoch {saved['epoch']} from the checkpoint")
        return _State(saved["epoch"], saved["best"], saved["best_epoch"], saved["step"], json.loads(saved["history"]))
