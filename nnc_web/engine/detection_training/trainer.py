"""Training loop of the CenterNet detector: the project's optimizer and schedule, boxes augmented with
their pixels, a checkpoint each epoch, resume, cancel within a batch, the best model by validation
mAP@0.5. Reports per-step `loss`, per-epoch `train_loss`, `heat_loss`, `size_loss`, `offset_loss` and
`valid_map50` / `valid_map` (the live curves).

`devices` > 1 (or a node list) runs the epochs under torch.distributed as the classifier does
(training/distributed.py launches the ranks, training/ranks.py holds the loop's pieces): DDP with
BatchNorm over the global batch, each rank its share of the single process's batches, the loss averaged
over the global batch's objects, so two processes follow one process's loss curve; rank 0 alone
validates, writes the checkpoint and the best model, and reports."""
from __future__ import annotations

import functools
import json
import pickle
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from nnc_web.engine.atomic import replace_atomically
from nnc_web.engine.detection_training.data import (
    DetectionData,
    DetectionDataset,
    collate,
    load_detection_csv,
)
from nnc_web.engine.detection_training.metrics import detection_metrics
from nnc_web.engine.detection_training.model import BACKBONE, STRIDE, CenterNetDetector, decode
from nnc_web.engine.detection_training.targets import batch_targets, detection_loss, object_counts
from nnc_web.engine.model_store import get_backbone
from nnc_web.engine.reporting import Reporter, UserError, check_stop
from nnc_web.engine.training import distributed, ranks
from nnc_web.engine.training.memory_guard import check_run_fits
from nnc_web.engine.training.trainer import TrainConfig, resolve_device

LOSS_PARTS = ("heat_loss", "size_loss", "offset_loss")


@dataclass
class DetectionResult:
    model: CenterNetDetector
    history: list[dict]
    best_epoch: int


@dataclass
class _State:
    epoch: int = 0
    best: float = -1.0
    best_epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)


def check_data(train: DetectionData, valid: DetectionData, num_classes: int) -> None:
    """Bad input before any training: no boxes at all, or class ids the run does not know."""
    if not train.images:
        raise UserError("the training dataset has no rows")
    if train.box_count == 0:
        raise UserError("the training dataset has no box at all: a detector learns from boxed objects")
    seen = max(train.num_classes(), valid.num_classes())
    if seen > num_classes:
        raise UserError(f"a box has class {seen - 1}, but the run has {num_classes} class names")


def loader(data: DetectionData, size: int, config: TrainConfig, augment: bool, epoch: int = 0,
           batch_size: int | None = None, rank: distributed.Rank | None = None) -> DataLoader:
    spec = get_backbone(BACKBONE)
    seed = config.seed * 1000 + epoch  # the same batches and augmentations after a resume
    dataset = DetectionDataset(data, size, spec.mean, spec.std, config.augmentation if augment else [], seed)
    if rank is not None:  # this rank's share of the batches below
        return ranks.rank_loader(dataset, config.batch_size, config.seed * 1000, epoch, rank, collate)
    return DataLoader(dataset, batch_size=batch_size or config.batch_size, shuffle=augment, collate_fn=collate,
                      generator=torch.Generator().manual_seed(seed))


def predict_boxes(model: CenterNetDetector, data: DetectionData, size: int, device: torch.device,
                  reporter: Reporter, batch_size: int = 16) -> list[dict]:
    """Per image: boxes (xyxy normalised), scores, labels of the top peaks (no threshold: mAP needs all)."""
    model.eval()
    found = []
    config = TrainConfig(batch_size=batch_size)
    with torch.no_grad():
        for images, _ in loader(data, size, config, augment=False):
            check_stop(reporter)
            for boxes, scores, labels in decode(*model(images.to(device))):
                found.append({"boxes": boxes.cpu(), "scores": scores.cpu(), "labels": labels.cpu()})
    return found


def truths_of(data: DetectionData) -> list[dict]:
    return [{"boxes": torch.tensor([b.corners() for b in boxes], dtype=torch.float32).reshape(-1, 4),
             "labels": torch.tensor([b.cls for b in boxes], dtype=torch.long)} for boxes in data.boxes]


class DetectionTrainer:
    def __init__(self, train: DetectionData, valid: DetectionData, class_names: list[str], config: TrainConfig,
                 workdir: Path, reporter: Reporter, rank: distributed.Rank | None = None) -> None:
        config.check()
        self.train_data, self.valid_data, self.class_names = train, valid, class_names
        self.config, self.workdir, self.reporter = config, workdir, reporter
        self.size = config.input_size or 256
        if self.size % 32:
            raise UserError(f"input_size must be a multiple of 32 (the backbone's stride), got {self.size}")
        check_data(train, valid, len(class_names))
        self.rank = rank  # set inside a process of a distributed run
        self.device = rank.device if rank else resolve_device(config.device)
        self.processes = None  # a distributed run's ProcessContext while it runs (its pids)
        workdir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path, self.best_path = workdir / "checkpoint.pt", workdir / "best.pt"

    def _optimizer(self, model: CenterNetDetector) -> torch.optim.Optimizer:
        lr = self.config.learning_rate
        groups = [{"params": model.features.body.parameters(), "lr": lr * 0.5},
                  {"params": [p for n, p in model.named_parameters() if not n.startswith("features.body.")]}]
        if self.config.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=1e-4)
        if self.config.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=lr)
        return torch.optim.Adam(groups, lr=lr)

    def _scheduler(self, optimizer):
        if self.config.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.config.max_epoch)
        if self.config.schedule == "step":
            return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, self.config.max_epoch // 3), gamma=0.1)
        return None

    def run(self, resume: bool = False) -> DetectionResult:
        config = self.config
        if self.rank is None:
            placement = distributed.plan(config.devices, config.nodes, self.device.type == "cuda")
            if placement.world > 1:
                return self._run_distributed(resume, placement)
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        model = CenterNetDetector(len(self.class_names), config.pretrained).to(self.device)
        check_run_fits(model, self.size, config.batch_size, self.device, self.rank)  # before any epoch
        optimizer = self._optimizer(model)
        scheduler = self._scheduler(optimizer)
        state = _State()
        if resume and self.checkpoint_path.exists():
            state = self._resume(model, optimizer, scheduler)
        self.reporter.log(f"training CenterNet on {BACKBONE} ({self.size} px, stride {STRIDE}) on {self.device}: "
                          f"{len(self.train_data.images)} training images ({self.train_data.box_count} boxes), "
                          f"{len(self.valid_data.images)} validation images, {len(self.class_names)} classes")
        trained = ranks.wrap(model, self.rank) if self.rank else model
        for epoch in range(state.epoch + 1, config.max_epoch + 1):
            started = time.monotonic()
            parts = self._epoch(trained, optimizer, epoch, state)
            if scheduler is not None:
                scheduler.step()
            if self.rank is None or self.rank.is_main:  # the others wait at the next epoch's first batch
                self._end_epoch(model, optimizer, scheduler, state, epoch, parts, time.monotonic() - started)
        if self.rank is not None and not self.rank.is_main:
            return DetectionResult(model.eval(), state.history, state.best_epoch)
        if config.save_best and self.best_path.exists():
            model.load_state_dict(torch.load(self.best_path, map_location=self.device, weights_only=True))
            self.reporter.log(f"kept the best model: epoch {state.best_epoch}, valid mAP@0.5 {state.best:.4f}")
        return DetectionResult(model.eval(), state.history, state.best_epoch)

    def _epoch(self, model: CenterNetDetector, optimizer, epoch: int, state: _State) -> dict:
        model.train()
        batches = loader(self.train_data, self.size, self.config, augment=True, epoch=epoch, rank=self.rank)
        names = ("loss", *LOSS_PARTS)
        sums = dict.fromkeys(names, 0.0)
        seen = 0
        for number, (images, boxes) in enumerate(batches, start=1):
            if self.rank is None:
                check_stop(self.reporter)
            else:
                ranks.check_stop_together(self.reporter, self.rank)
            loss, values, count = self.losses(model, images, boxes)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            state.step += 1
            for name, value in zip(names, values, strict=True):
                sums[name] += value * count
            seen += count
            self.reporter.metric("loss", state.step, values[0])
            self.reporter.progress((epoch - 1) * len(batches) + number, self.config.max_epoch * len(batches))
            if self.config.logging_steps and state.step % self.config.logging_steps == 0:
                self.reporter.log(f"step {state.step}: loss {values[0]:.4f}")
        return {name: value / max(seen, 1) for name, value in sums.items()}

    def losses(self, model: nn.Module, images: torch.Tensor, boxes: list[torch.Tensor]) -> tuple[torch.Tensor, list[float], int]:
        """The loss to step on, the loss and its parts over the (global) batch, and its image count. In a
        distributed run each rank's parts are its sums over the global batch's object count, times the
        world because DDP averages the ranks' gradients: the ranks together take one process's step."""
        targets = batch_targets(boxes, len(self.class_names), self.size // STRIDE, self.device)
        names = ("loss", *LOSS_PARTS)
        if self.rank is None:
            parts = detection_loss(model(images.to(self.device)), targets)
            return parts["loss"], [parts[name].item() for name in names], len(images)
        counts = torch.tensor(ranks.summed(object_counts(targets), self.rank), device=self.device)
        parts = detection_loss(model(images.to(self.device)), targets, counts)
        *values, count = ranks.summed([parts[name].item() for name in names] + [len(images)], self.rank)
        return parts["loss"] * self.rank.world, values, int(count)

    def _run_distributed(self, resume: bool, placement: distributed.Placement) -> DetectionResult:
        args = (self.train_data, self.valid_data, self.class_names, self.config, resume)
        model, outcome = ranks.train_in_processes(
            self, lambda port: ranks.node_spec(self, "detector", resume, port), _rank_main, args, placement,
            functools.partial(CenterNetDetector, len(self.class_names), pretrained=False))
        return DetectionResult(model.eval(), outcome["history"], outcome["best_epoch"])

    def _end_epoch(self, model, optimizer, scheduler, state: _State, epoch: int, parts: dict, seconds: float) -> None:
        scores = {"map_50": 0.0, "map": 0.0}
        if self.valid_data.images:
            scores = detection_metrics(predict_boxes(model, self.valid_data, self.size, self.device, self.reporter),
                                       truths_of(self.valid_data), self.class_names)
        record = {"epoch": epoch, "train_loss": parts["loss"], **{n: parts[n] for n in LOSS_PARTS},
                  "valid_map50": scores["map_50"], "valid_map": scores["map"], "seconds": round(seconds, 3)}
        state.history.append(record)
        for name in ("train_loss", *LOSS_PARTS, "valid_map50", "valid_map"):
            self.reporter.metric(name, epoch, record[name])
        improved = record["valid_map50"] > state.best
        if improved:
            state.best, state.best_epoch = record["valid_map50"], epoch
            if self.config.save_best:
                replace_atomically(self.best_path, functools.partial(torch.save, model.state_dict()))
        self.reporter.log(f"epoch {epoch}/{self.config.max_epoch}: train loss {parts['loss']:.4f} (heat "
                          f"{parts['heat_loss']:.4f}, size {parts['size_loss']:.4f}, offset {parts['offset_loss']:.4f}),"
                          f" valid mAP@0.5 {record['valid_map50']:.4f}, mAP {record['valid_map']:.4f}"
                          f"{' (best)' if improved else ''} [{seconds:.1f} s]")
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


def _rank_main(rank: distributed.Rank, reporter, workdir: Path, train: DetectionData, valid: DetectionData,
               class_names: list[str], config: TrainConfig, resume: bool) -> dict:
    """One process of a distributed run (spawned by distributed.launch): the usual loop in DDP form."""
    result = DetectionTrainer(train, valid, class_names, config, workdir, reporter, rank=rank).run(resume=resume)
    return {"history": result.history, "best_epoch": result.best_epoch}


def join_run(spec: dict, node_rank: int, reporter: Reporter) -> None:
    """This node's processes of a multi-node run node 0 started (training/distributed.py's join)."""
    ranks.join_node(spec, node_rank, reporter, load_detection_csv, _rank_main)
