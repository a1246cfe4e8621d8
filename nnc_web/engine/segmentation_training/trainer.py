"""Training loop of the segmenter: cross-entropy with ignore index 255, flip augmentation moving the
mask with the pixels, a checkpoint each epoch, resume, cancel, the best model by validation mean IoU.
Reports per-step `loss`, per-epoch `train_loss`, `valid_mean_iou`, `valid_overall_accuracy`.

`devices` > 1 (or a node list) runs the epochs under torch.distributed as the detector does
(training/ranks.py): DDP with BatchNorm over the global batch, each rank its share of the single
process's batches, the loss averaged over the global batch's labelled pixels; rank 0 alone validates,
writes the checkpoints and reports."""
from __future__ import annotations

import functools
import json
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from nnc_web.engine.atomic import replace_atomically
from nnc_web.engine.detection_training.model import BACKBONE
from nnc_web.engine.model_store import get_backbone
from nnc_web.engine.reporting import Reporter, UserError, check_stop
from nnc_web.engine.segmentation import IGNORE
from nnc_web.engine.segmentation_training.data import (
    SegmentationData,
    SegmentationDataset,
    check_masks,
    load_segmentation_csv,
)
from nnc_web.engine.segmentation_training.metrics import confusion, segmentation_metrics
from nnc_web.engine.segmentation_training.model import LiteSegmenter
from nnc_web.engine.training import distributed, ranks
from nnc_web.engine.training.memory_guard import check_run_fits
from nnc_web.engine.training.trainer import TrainConfig, resolve_device


def loader(data: SegmentationData, size: int, config: TrainConfig, augment: bool, epoch: int = 0,
           rank: distributed.Rank | None = None) -> DataLoader:
    spec = get_backbone(BACKBONE)
    seed = config.seed * 1000 + epoch
    dataset = SegmentationDataset(data, size, spec.mean, spec.std, config.augmentation if augment else [], seed)
    if rank is not None:  # this rank's share of the batches below
        return ranks.rank_loader(dataset, config.batch_size, config.seed * 1000, epoch, rank)
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
                 workdir: Path, reporter: Reporter, rank: distributed.Rank | None = None) -> None:
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
        self.rank = rank  # set inside a process of a distributed run
        self.device = rank.device if rank else resolve_device(config.device)
        self.processes = None  # a distributed run's ProcessContext while it runs (its pids)
        workdir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path, self.best_path = workdir / "checkpoint.pt", workdir / "best.pt"

    def run(self, resume: bool = False) -> SegmentationResult:
        config = self.config
        if self.rank is None:
            placement = distributed.plan(config.devices, config.nodes, self.device.type == "cuda")
            if placement.world > 1:
                return self._run_distributed(resume, placement)
        torch.manual_seed(config.seed)
        model = LiteSegmenter(len(self.class_names), config.pretrained).to(self.device)
        check_run_fits(model, self.size, config.batch_size, self.device, self.rank)  # before any epoch
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
        trained = ranks.wrap(model, self.rank) if self.rank else model
        for epoch in range(state.epoch + 1, config.max_epoch + 1):
            started = time.monotonic()
            train_loss = self._epoch(trained, optimizer, epoch, state)
            if scheduler is not None:
                scheduler.step()
            if self.rank is None or self.rank.is_main:  # the others wait at the next epoch's first batch
                self._end_epoch(model, optimizer, scheduler, state, epoch, train_loss, time.monotonic() - started)
        if self.rank is not None and not self.rank.is_main:
            return SegmentationResult(model.eval(), state.history, state.best_epoch)
        if config.save_best and self.best_path.exists():
            model.load_state_dict(torch.load(self.best_path, map_location=self.device, weights_only=True))
            self.reporter.log(f"kept the best model: epoch {state.best_epoch}, valid mean IoU {state.best:.4f}")
        return SegmentationResult(model.eval(), state.history, state.best_epoch)

    def _epoch(self, model, optimizer, epoch: int, state: _State) -> float:
        model.train()
        batches = loader(self.train_data, self.size, self.config, augment=True, epoch=epoch, rank=self.rank)
        total, seen = 0.0, 0
        for number, (images, masks) in enumerate(batches, start=1):
            if self.rank is None:
                check_stop(self.reporter)
            else:
                ranks.check_stop_together(self.reporter, self.rank)
            loss, value, count = self.losses(model, images, masks)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            state.step += 1
            total += value * count
            seen += count
            self.reporter.metric("loss", state.step, value)
            self.reporter.progress((epoch - 1) * len(batches) + number, self.config.max_epoch * len(batches))
        return total / max(seen, 1)

    def losses(self, model: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, float, int]:
        """The loss to step on, the loss over the (global) batch and its image count. In a distributed run
        each rank's loss is its sum over the global batch's labelled pixels, times the world because DDP
        averages the ranks' gradients: the ranks together take one process's step."""
        masks = masks.to(self.device)
        if self.rank is None:
            loss = F.cross_entropy(model(images.to(self.device)), masks, ignore_index=IGNORE)
            return loss, loss.item(), len(images)
        labelled = ranks.summed([float((masks != IGNORE).sum())], self.rank)[0]
        share = F.cross_entropy(model(images.to(self.device)), masks, ignore_index=IGNORE,
                                reduction="sum") / max(labelled, 1.0)
        value, count = ranks.summed([share.item(), len(images)], self.rank)
        return share * self.rank.world, value, int(count)

    def _run_distributed(self, resume: bool, placement: distributed.Placement) -> SegmentationResult:
        args = (self.train_data, self.valid_data, self.class_names, self.config, resume)
        model, outcome = ranks.train_in_processes(
            self, lambda port: ranks.node_spec(self, "segmenter", resume, port), _rank_main, args, placement,
            functools.partial(LiteSegmenter, len(self.class_names), pretrained=False))
        return SegmentationResult(model.eval(), outcome["history"], outcome["best_epoch"])

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


def _rank_main(rank: distributed.Rank, reporter, workdir: Path, train: SegmentationData, valid: SegmentationData,
               class_names: list[str], config: TrainConfig, resume: bool) -> dict:
    """One process of a distributed run (spawned by distributed.launch): the usual loop in DDP form."""
    result = SegmentationTrainer(train, valid, class_names, config, workdir, reporter, rank=rank).run(resume=resume)
    return {"history": result.history, "best_epoch": result.best_epoch}


def join_run(spec: dict, node_rank: int, reporter: Reporter) -> None:
    """This node's processes of a multi-node run node 0 started (training/distributed.py's join)."""
    ranks.join_node(spec, node_rank, reporter, load_segmentation_csv, _rank_main)
