"""Training loop for image classifiers: transfer learning with a bottleneck cache, checkpoints each
epoch, resume, cancel within one batch, best-model keeping. Reports through the Reporter protocol:
per-step `loss`, per-epoch `train_loss`, `train_error`, `valid_error`."""
from __future__ import annotations

import functools
import hashlib
import json
import math
import pickle
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nnc_web.engine.atomic import replace_atomically
from nnc_web.engine.model_store import get_backbone
from nnc_web.engine.reporting import JobCancelled, Reporter, UserError
from nnc_web.engine.training.data import ClassificationData, ImageDataset
from nnc_web.engine.training.model import TransferClassifier

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")
AUGMENTATIONS = ("flip", "translate", "scale", "brightness")
BACKBONE_LR_FACTOR = 0.1  # `all`: the pretrained backbone learns ten times slower than the new head


@dataclass
class TrainConfig:
    max_epoch: int = 10
    batch_size: int = 32
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    schedule: str = "none"
    augmentation: list[str] = field(default_factory=list)
    save_best: bool = True
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    input_size: int | None = None  # None: the backbone's own
    train_param: str = "last_fc_only"  # last_fc_only | all
    pretrained: bool = True
    feature_cache: bool = True  # last_fc_only: compute the backbone's features once (benchmarks turn it off)
    logging_steps: int = 0  # > 0: a log line with the loss every so many steps (EasyMaker's option)

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"schedule must be one of {', '.join(SCHEDULES)}")
        unknown = set(self.augmentation) - set(AUGMENTATIONS)
        if unknown:
            raise UserError(f"unknown augmentation {', '.join(sorted(unknown))}")
        if self.train_param not in ("last_fc_only", "all"):
            raise UserError("train_param must be all or last_fc_only")
        if self.max_epoch < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise UserError("max_epoch, batch_size and learning_rate must be positive")


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("a GPU was asked for, but CUDA is not available on this machine")
    if name in ("auto", "gpu"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def transforms_for(backbone_id: str, size: int, augmentation: list[str]):
    from torchvision.transforms import v2

    spec = get_backbone(backbone_id)
    steps = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Resize((size, size), antialias=True)]
    if "flip" in augmentation:
        steps.append(v2.RandomHorizontalFlip())
    if "translate" in augmentation or "scale" in augmentation:
        steps.append(v2.RandomAffine(degrees=0, translate=(0.1, 0.1) if "translate" in augmentation else None,
                                     scale=(0.9, 1.1) if "scale" in augmentation else None))
    if "brightness" in augmentation:
        steps.append(v2.ColorJitter(brightness=0.2))
    steps.append(v2.Normalize(spec.mean, spec.std))
    return v2.Compose(steps)


@dataclass
class TrainResult:
    model: TransferClassifier
    history: list[dict]
    best_epoch: int
    config: TrainConfig


class Trainer:
    def __init__(self, backbone_id: str, train: ClassificationData, valid: ClassificationData, config: TrainConfig,
                 workdir: Path, reporter: Reporter, cache_dir: Path | None = None) -> None:
        config.check()
        self.backbone_id = backbone_id
        self.train_data, self.valid_data = train, valid
        self.config = config
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cache_dir = cache_dir or workdir / "cache"
        self.reporter = reporter
        self.device = resolve_device(config.device)
        self.size = config.input_size or get_backbone(backbone_id).input_size
        self.num_classes = max(len(train.class_names), len(valid.class_names),
                               max(train.labels + valid.labels, default=0) + 1)
        self.checkpoint_path = workdir / "checkpoint.pt"
        self.best_path = workdir / "best.pt"

    # -- data ------------------------------------------------------------------------------------
    def _image_loader(self, data: ClassificationData, augment: bool, shuffle: bool, epoch: int = 0) -> DataLoader:
        transform = transforms_for(self.backbone_id, self.size, self.config.augmentation if augment else [])
        generator = torch.Generator().manual_seed(self.config.seed * 1000 + epoch)  # same order after a resume
        return DataLoader(ImageDataset(data.images, data.labels, transform), batch_size=self.config.batch_size,
                          shuffle=shuffle, generator=generator)

    def _cache_key(self, data: ClassificationData) -> str:
        parts = [data.fingerprint(), self.backbone_id, str(self.size), str(self.config.pretrained)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]

    def cached_features(self, model: TransferClassifier, data: ClassificationData, name: str) -> torch.Tensor:
        """The backbone's features of every image, computed once and kept on disk; the key changes
        with the data, the model, the input size and the weights."""
        path = self.cache_dir / f"{self._cache_key(data)}.npy"
        if path.exists():
            self.reporter.log(f"{name}: bottleneck features from the cache")
            return torch.from_numpy(np.load(path))
        self.reporter.log(f"{name}: computing bottleneck features of {len(data.images)} images")
        features = []
        model.features.eval()
        with torch.no_grad():
            for images, _ in self._image_loader(data, augment=False, shuffle=False):
                self._check_stop()
                features.append(model.features(images.to(self.device)).cpu())
        stacked = torch.cat(features)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        def write(target: Path) -> None:
            with open(target, "wb") as handle:  # a handle: np.save would add ".npy" to the name
                np.save(handle, stacked.numpy())

        replace_atomically(path, write)  # a killed worker must not leave a truncated cache file
        return stacked

    # -- the loop --------------------------------------------------------------------------------
    def _check_stop(self) -> None:
        if self.reporter.should_stop():
            raise JobCancelled("cancelled by the user")

    def _optimizer(self, model: TransferClassifier) -> torch.optim.Optimizer:
        lr = self.config.learning_rate
        if self.config.train_param == "last_fc_only":
            groups = [{"params": model.head.parameters(), "lr": lr}]
        else:
            groups = [{"params": model.features.parameters(), "lr": lr * BACKBONE_LR_FACTOR},
                      {"params": model.head.parameters(), "lr": lr}]
        if self.config.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=lr, momentum=0.9)
        if self.config.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=lr)
        return torch.optim.Adam(groups, lr=lr)

    def _scheduler(self, optimizer: torch.optim.Optimizer):
        if self.config.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.config.max_epoch)
        if self.config.schedule == "step":
            return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, self.config.max_epoch // 3), gamma=0.1)
        return None

    def run(self, resume: bool = False) -> TrainResult:
        config = self.config
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        model = TransferClassifier(self.backbone_id, self.num_classes, config.pretrained).to(self.device)
        frozen = config.train_param == "last_fc_only"
        if frozen:
            model.features.requires_grad_(False)
        optimizer = self._optimizer(model)
        scheduler = self._scheduler(optimizer)
        history: list[dict] = []
        start_epoch, best_error, best_epoch, step = 1, math.inf, 0, 0
        if resume and self.checkpoint_path.exists():
            try:
                state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
            except (EOFError, RuntimeError, pickle.UnpicklingError) as exc:
                raise UserError(f"the checkpoint of this run cannot be read ({type(exc).__name__}): start a new "
                                f"run") from exc
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler"):
                scheduler.load_state_dict(state["scheduler"])
            history = json.loads(state["history"])
            start_epoch, best_error, best_epoch, step = (state["epoch"] + 1, state["best_error"], state["best_epoch"],
                                                        state["step"])
            self.reporter.log(f"resuming after epoch {state['epoch']} from the checkpoint")
        use_cache = frozen and not config.augmentation and config.feature_cache
        if frozen and config.augmentation:
            self.reporter.log("augmentation is on: the bottleneck cache is off (features change every epoch)")
        if use_cache:
            train_x = self.cached_features(model, self.train_data, "training")
            valid_x = self.cached_features(model, self.valid_data, "validation")
        self.reporter.log(f"training {self.backbone_id} ({config.train_param}) on {self.device}: "
                          f"{len(self.train_data.labels)} training and {len(self.valid_data.labels)} validation "
                          f"images, {self.num_classes} classes, {config.max_epoch} epochs")
        for epoch in range(start_epoch, config.max_epoch + 1):
            started = time.monotonic()
            model.train()
            if frozen:
                model.features.eval()  # frozen BatchNorm statistics stay as pretrained
            if use_cache:
                generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
                batches = DataLoader(TensorDataset(train_x, torch.tensor(self.train_data.labels)),
                                     batch_size=config.batch_size, shuffle=True, generator=generator)
            else:
                batches = self._image_loader(self.train_data, augment=True, shuffle=True, epoch=epoch)
            total_loss, wrong, seen = 0.0, 0, 0
            for inputs, labels in batches:
                self._check_stop()
                inputs, labels = inputs.to(self.device), labels.to(self.device)
                logits = model.head(inputs) if use_cache else model(inputs)
                loss = nn.functional.cross_entropy(logits, labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                loss_value = loss.item()
                total_loss += loss_value * len(labels)
                wrong += int((logits.argmax(1) != labels).sum())
                seen += len(labels)
                self.reporter.metric("loss", step, loss_value)
                if config.logging_steps and step % config.logging_steps == 0:
                    self.reporter.log(f"step {step}: loss {loss_value:.4f}")
            if scheduler is not None:
                scheduler.step()
            valid_error = self._valid_error(model, valid_x if use_cache else None)
            record = {"epoch": epoch, "train_loss": total_loss / max(seen, 1), "train_error": wrong / max(seen, 1),
                      "valid_error": valid_error, "seconds": round(time.monotonic() - started, 3)}
            history.append(record)
            for name in ("train_loss", "train_error", "valid_error"):
                self.reporter.metric(name, epoch, record[name])
            improved = valid_error < best_error
            if improved:
                best_error, best_epoch = valid_error, epoch
                if config.save_best:
                    replace_atomically(self.best_path, functools.partial(torch.save, model.state_dict()))
            self.reporter.log(f"epoch {epoch}/{config.max_epoch}: train loss {record['train_loss']:.4f}, "
                              f"train error {record['train_error']:.4f}, valid error {valid_error:.4f}"
                              f"{' (best)' if improved else ''} [{record['seconds']:.1f} s]")
            self.reporter.progress(epoch, config.max_epoch)
            checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict() if scheduler is not None else {},
                          "epoch": epoch, "best_error": best_error, "best_epoch": best_epoch, "step": step,
                          "history": json.dumps(history)}
            replace_atomically(self.checkpoint_path, functools.partial(torch.save, checkpoint))
        if config.save_best and self.best_path.exists():
            model.load_state_dict(torch.load(self.best_path, map_location=self.device, weights_only=True))
            self.reporter.log(f"kept the best model: epoch {best_epoch}, valid error {best_error:.4f}")
        return TrainResult(model.eval(), history, best_epoch, config)

    def _valid_error(self, model: TransferClassifier, features: torch.Tensor | None) -> float:
        model.eval()
        labels = torch.tensor(self.valid_data.labels)
        if not len(labels):
            return 0.0
        with torch.no_grad():
            if features is not None:
                predicted = model.head(features.to(self.device)).argmax(1).cpu()
            else:
                predicted = torch.cat([model(x.to(self.device)).argmax(1).cpu()
                                       for x, _ in self._image_loader(self.valid_data, augment=False, shuffle=False)])
        return float((predicted != labels).float().mean())


def config_dict(config: TrainConfig) -> dict:
    return asdict(config)
