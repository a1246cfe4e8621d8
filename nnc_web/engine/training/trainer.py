"""Training loop for image classifiers: transfer learning with a bottleneck cache, checkpoints each
epoch, resume, cancel within one batch, best-model keeping. Reports through the Reporter protocol:
per-step `loss`, per-epoch `train_loss`, `train_error`, `valid_error`, and progress per batch (images
while features are computed, training steps while it trains).

`last_fc_only` with the cache fits the head as a logistic regression (engine/training/linear_head.py):
each epoch is one weight decay of a strong-to-weak path, fitted full-batch with L-BFGS, and the
validation error keeps the best. `all` first fits the head that way on the frozen features, then
fine-tunes everything with the project's optimizer, the backbone at a tenth of the head's rate.

`devices` > 1 (or a node list) runs the image epochs under torch.distributed (training/distributed.py):
one process per device, DistributedDataParallel, a DistributedSampler that deals each rank its share of
the same global batches a single process would see; rank 0 alone validates and writes the checkpoint,
the best model and every report. The cached-head fit of last_fc_only stays in one process."""
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
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from nnc_web.engine.atomic import replace_atomically
from nnc_web.engine.model_store import get_backbone
from nnc_web.engine.reporting import JobCancelled, Reporter, UserError
from nnc_web.engine.training import distributed, linear_head, ranks
from nnc_web.engine.training.data import ClassificationData, ImageDataset
from nnc_web.engine.training.memory_guard import check_run_fits
from nnc_web.engine.training.model import TransferClassifier
from nnc_web.engine.training.options import AUGMENTATIONS, OPTIMIZERS, SCHEDULES

BACKBONE_LR_FACTOR = 0.1  # `all`: the pretrained backbone learns ten times slower than the new head
WARM_UP_PATH = 6  # `all`: weight decays tried when the head is fitted before fine-tuning (1e-1 .. 1e-6)


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
    warm_up: bool = True  # all (pretrained): fit the new head on the frozen features before fine-tuning
    logging_steps: int = 0  # > 0: a log line with the loss every so many steps (EasyMaker's option)
    devices: str | int = 1  # processes per node: 1 (one process, as always), auto (every visible GPU), 2, 4 ...
    nodes: str | list[str] = ""  # optional: the machines of a multi-node run, the rendezvous host first

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
        distributed.parse_devices(self.devices)
        distributed.parse_nodes(self.nodes)


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
                 workdir: Path, reporter: Reporter, cache_dir: Path | None = None,
                 rank: distributed.Rank | None = None) -> None:
        config.check()
        self.backbone_id = backbone_id
        self.train_data, self.valid_data = train, valid
        self.config = config
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cache_dir = cache_dir or workdir / "cache"
        self.reporter = reporter
        self.rank = rank  # set inside a process of a distributed run
        self.device = rank.device if rank else resolve_device(config.device)
        self.processes = None  # a distributed run's ProcessContext while it runs (its pids)
        self.size = config.input_size or get_backbone(backbone_id).input_size
        self.num_classes = max(len(train.class_names), len(valid.class_names),
                               max(train.labels + valid.labels, default=0) + 1)
        self.checkpoint_path = workdir / "checkpoint.pt"
        self.best_path = workdir / "best.pt"

    # -- data ------------------------------------------------------------------------------------
    def _image_loader(self, data: ClassificationData, augment: bool, shuffle: bool, epoch: int = 0) -> DataLoader:
        transform = transforms_for(self.backbone_id, self.size, self.config.augmentation if augment else [])
        dataset = ImageDataset(data.images, data.labels, transform)
        if self.rank is not None and shuffle:
            sampler = SameBatchesSampler(dataset, self.rank.world, self.rank.rank, shuffle=True,
                                          seed=self.config.seed * 1000)
            sampler.set_epoch(epoch)
            return DataLoader(dataset, batch_size=self._rank_batch(), sampler=sampler)
        generator = torch.Generator().manual_seed(self.config.seed * 1000 + epoch)  # same order after a resume
        return DataLoader(dataset, batch_size=self.config.batch_size, shuffle=shuffle, generator=generator)

    def _rank_batch(self) -> int:
        return max(1, self.config.batch_size // self.rank.world) if self.rank else self.config.batch_size

    def _cache_key(self, data: ClassificationData) -> str:
        parts = [data.fingerprint(), self.backbone_id, str(self.size), str(self.config.pretrained)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]

    def cached_features(self, model: TransferClassifier, data: ClassificationData, name: str,
                        progress: _FeatureProgress | None = None) -> torch.Tensor:
        """The backbone's features of every image, computed once and kept on disk; the key changes
        with the data, the model, the input size and the weights."""
        path = self._cache_path(data)
        if path.exists():
            self.reporter.log(f"{name}: bottleneck features from the cache")
            return torch.from_numpy(np.load(path))
        self.reporter.log(f"{name}: computing bottleneck features of {len(data.images)} images")
        progress = progress or _FeatureProgress(self.reporter, len(data.images))
        features = []
        model.features.eval()
        with torch.no_grad():
            for images, _ in self._image_loader(data, augment=False, shuffle=False):
                self._check_stop()
                features.append(model.features(images.to(self.device)).cpu())
                progress.advance(len(images))
        stacked = torch.cat(features)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

        def write(target: Path) -> None:
            with open(target, "wb") as handle:  # a handle: np.save would add ".npy" to the name
                np.save(handle, stacked.numpy())

        replace_atomically(path, write)  # a killed worker must not leave a truncated cache file
        return stacked

    def _cache_path(self, data: ClassificationData) -> Path:
        return self.cache_dir / f"{self._cache_key(data)}.npy"

    def _both_features(self, model: TransferClassifier) -> tuple[torch.Tensor, torch.Tensor]:
        """Training and validation features, with one progress count over the images still to compute."""
        todo = sum(len(d.images) for d in (self.train_data, self.valid_data) if not self._cache_path(d).exists())
        progress = _FeatureProgress(self.reporter, todo)
        return (self.cached_features(model, self.train_data, "training", progress).to(self.device),
                self.cached_features(model, self.valid_data, "validation", progress).to(self.device))

    def _log_channels(self) -> None:
        """Grayscale datasets are welcome: their images are repeated into the 3 channels an ImageNet
        backbone takes (ImageDataset converts to RGB). Say so rather than do it silently."""
        for name, data in (("training", self.train_data), ("validation", self.valid_data)):
            if not data.images:
                continue
            try:
                with Image.open(data.images[0]) as image:
                    bands = len(image.getbands())
            except OSError:
                continue  # an unreadable image is reported when it is loaded
            if bands == 1:
                self.reporter.log(f"the {name} images have 1 channel (grayscale): each is repeated into the 3 "
                                  f"channels {self.backbone_id} takes")

    # -- the loop --------------------------------------------------------------------------------
    def _check_stop(self) -> None:
        if self.reporter.should_stop():
            raise JobCancelled("cancelled by the user")

    def _check_stop_together(self) -> None:
        """Where every rank runs in step: rank 0 asks the job and broadcasts the answer, so all stop at
        the same batch (one alone would leave the others waiting in a collective)."""
        if self.rank is None:
            return self._check_stop()
        flag = torch.tensor([1 if self.reporter.should_stop() else 0], device=self.device)
        torch.distributed.broadcast(flag, src=0)
        if flag.item():
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
        if self.rank is None:
            placement = distributed.plan(config.devices, config.nodes, self.device.type == "cuda")
            if placement.world > 1:
                if self._uses_cache():
                    self.reporter.log(f"devices is {config.devices}: last_fc_only trains a linear head on cached "
                                      f"features: one process is enough")
                else:
                    return self._run_distributed(resume, placement)
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        model = TransferClassifier(self.backbone_id, self.num_classes, config.pretrained).to(self.device)
        if self.rank is not None and self.rank.rank:
            torch.manual_seed(config.seed + self.rank.rank)  # the same weights, each rank its own augmentation
        frozen = config.train_param == "last_fc_only"
        if frozen:
            model.features.requires_grad_(False)
        check_run_fits(model, self.size, config.batch_size, self.device, self.rank)  # before any epoch
        optimizer = self._optimizer(model)
        scheduler = self._scheduler(optimizer)
        state = _State()
        if resume and self.checkpoint_path.exists():
            state = self._resume(model, optimizer, scheduler)
        self._log_channels()
        use_cache = frozen and not config.augmentation and config.feature_cache
        if frozen and config.augmentation:
            self.reporter.log("augmentation is on: the bottleneck cache is off (features change every epoch)")
        train_x = valid_x = train_y = None
        if use_cache:
            train_x, valid_x = self._both_features(model)
            train_y = torch.tensor(self.train_data.labels, device=self.device)
        self.reporter.log(f"training {self.backbone_id} ({config.train_param}) on {self.device}: "
                          f"{len(self.train_data.labels)} training and {len(self.valid_data.labels)} validation "
                          f"images, {self.num_classes} classes, {config.max_epoch} epochs")
        if use_cache:
            path = linear_head.weight_decay_path(config.max_epoch)
            self._log_head_fit(path)
        elif config.train_param == "all" and config.pretrained and config.warm_up and state.epoch == 0:
            if self.rank is None or self.rank.is_main:
                self._warm_up_head(model)  # distributed: rank 0 alone; DDP below gives its head to all
        trained = self._wrap(model)
        for epoch in range(state.epoch + 1, config.max_epoch + 1):
            started = time.monotonic()
            if use_cache:
                train_loss, train_error, note = self._head_epoch(model, train_x, train_y, path[epoch - 1], state)
            else:
                train_loss, train_error, note = self._minibatch_epoch(trained, optimizer, epoch, state)
                if scheduler is not None:
                    scheduler.step()
            self._end_epoch(model, optimizer, scheduler, state, epoch, train_loss, train_error, valid_x, note,
                            time.monotonic() - started)
            if use_cache:  # an epoch of the head takes a moment: counted whole (image epochs count batches)
                self.reporter.progress(epoch, config.max_epoch)
        if config.save_best and self.best_path.exists() and (self.rank is None or self.rank.is_main):
            model.load_state_dict(torch.load(self.best_path, map_location=self.device, weights_only=True))
            self.reporter.log(f"kept the best model: epoch {state.best_epoch}, valid error {state.best_error:.4f}")
        return TrainResult(model.eval(), state.history, state.best_epoch, config)

    def _uses_cache(self) -> bool:
        config = self.config
        return config.train_param == "last_fc_only" and not config.augmentation and config.feature_cache

    def _wrap(self, model: TransferClassifier) -> nn.Module:
        """DistributedDataParallel inside a distributed run (it starts every rank from rank 0's weights
        and buffers); the model itself otherwise."""
        if self.rank is None:
            return model
        if self.rank.backend == "nccl" and not self.config.pretrained:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # BatchNorm learns: statistics over all GPUs
        on_gpu = self.device.type == "cuda"
        # find_unused_parameters: the backbone's own classifier (timm) is never used, so gets no gradient
        return nn.parallel.DistributedDataParallel(model, device_ids=[self.device.index] if on_gpu else None,
                                                   find_unused_parameters=True)

    def _run_distributed(self, resume: bool, placement: distributed.Placement) -> TrainResult:
        """Launch the ranks, relay rank 0's reports, then take the model rank 0 wrote (the best, or the
        last epoch's) as a single run returns it."""
        args = (self.backbone_id, self.train_data, self.valid_data, self.config, self.cache_dir, resume)
        model, outcome = ranks.train_in_processes(
            self, lambda port: _spec(self, resume, port), _rank_main, args, placement,
            lambda: TransferClassifier(self.backbone_id, self.num_classes, pretrained=False))  # rank 0's weights
        return TrainResult(model.eval(), outcome["history"], outcome["best_epoch"], self.config)

    def _log_head_fit(self, path: list[float]) -> None:
        kept = ("the validation error picks the best" if self.config.save_best
                else "the last is kept (save_best is off)")
        self.reporter.log(
            f"the head is fitted as a logistic regression on the cached features: full-batch L-BFGS (up to "
            f"{linear_head.MAX_ITER} iterations an epoch), one weight decay per epoch from {path[0]:.0e} down to "
            f"{path[-1]:.0e}, each fit starting from the last; {kept}. optimizer, learning_rate, batch_size and "
            f"schedule are for fine-tuning and are not used")

    def _resume(self, model: TransferClassifier, optimizer, scheduler) -> _State:
        try:
            saved = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        except (EOFError, RuntimeError, pickle.UnpicklingError) as exc:
            raise UserError(f"the checkpoint of this run cannot be read ({type(exc).__name__}): start a new "
                            f"run") from exc
        model.load_state_dict(saved["model"])
        if saved.get("optimizer"):
            optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None and saved.get("scheduler"):
            scheduler.load_state_dict(saved["scheduler"])
        self.reporter.log(f"resuming after epoch {saved['epoch']} from the checkpoint")
        return _State(saved["epoch"], saved["best_error"], saved["best_epoch"], saved["step"],
                      json.loads(saved["history"]))

    def _head_epoch(self, model: TransferClassifier, train_x: torch.Tensor, train_y: torch.Tensor,
                    weight_decay: float, state: _State) -> tuple[float, float, str]:
        """One point of the weight-decay path: the head fitted to convergence from where it is."""
        start = state.step

        def on_loss(iterations: int, loss: float) -> None:
            state.step = start + iterations
            self.reporter.metric("loss", state.step, loss)

        iterations = linear_head.fit_head(model.head, train_x, train_y, weight_decay, self._check_stop, on_loss)
        loss, error = linear_head.loss_and_error(model.head, train_x, train_y)
        return loss, error, f"weight decay {weight_decay:.0e}, {iterations} L-BFGS iterations"

    def _warm_up_head(self, model: TransferClassifier) -> None:
        """Fine-tuning from a trained head rather than a random one: a random head's large early
        gradients would flow into, and distort, the pretrained features (linear probing, then fine-tuning:
        Kumar et al., Fine-Tuning can Distort Pretrained Features, ICLR 2022)."""
        train_x, valid_x = self._both_features(model)
        train_y = torch.tensor(self.train_data.labels, device=self.device)
        valid_y = torch.tensor(self.valid_data.labels, device=self.device)
        best = (math.inf, None, 0.0)
        for weight_decay in linear_head.weight_decay_path(WARM_UP_PATH):
            linear_head.fit_head(model.head, train_x, train_y, weight_decay, self._check_stop, lambda *_: None)
            error = linear_head.loss_and_error(model.head, valid_x, valid_y)[1] if len(valid_y) else 0.0
            if error < best[0]:
                best = (error, {k: v.clone() for k, v in model.head.state_dict().items()}, weight_decay)
        model.head.load_state_dict(best[1])
        self.reporter.log(f"warm-up: the new head fitted on the frozen features first (L-BFGS, weight decay "
                          f"{best[2]:.0e} chosen on the validation split, valid error {best[0]:.4f}); then every "
                          f"layer is fine-tuned, the backbone at {BACKBONE_LR_FACTOR:g} x the head's learning rate")

    def _minibatch_epoch(self, model: TransferClassifier, optimizer, epoch: int, state: _State
                         ) -> tuple[float, float, str]:
        """One pass over the images in batches (fine-tuning, or a frozen backbone without the cache)."""
        config = self.config
        model.train()
        inner = getattr(model, "module", model)  # DistributedDataParallel's model
        if config.train_param == "last_fc_only":
            inner.features.eval()  # frozen BatchNorm statistics stay as pretrained
        elif config.pretrained:
            _freeze_batch_norm(inner.features)
        batches = self._image_loader(self.train_data, augment=True, shuffle=True, epoch=epoch)
        per_epoch = len(batches)
        total_loss, wrong, seen = 0.0, 0, 0
        for number, (inputs, labels) in enumerate(batches, start=1):
            self._check_stop_together()
            inputs, labels = inputs.to(self.device), labels.to(self.device)
            logits = model(inputs)
            loss = nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            state.step += 1
            batch_wrong = int((logits.argmax(1) != labels).sum())
            loss_value, batch_wrong, batch_seen = self._all_ranks(loss.item(), batch_wrong, len(labels))
            total_loss += loss_value * batch_seen
            wrong += batch_wrong
            seen += batch_seen
            self.reporter.metric("loss", state.step, loss_value)
            self.reporter.progress((epoch - 1) * per_epoch + number, config.max_epoch * per_epoch)
            if config.logging_steps and state.step % config.logging_steps == 0:
                self.reporter.log(f"step {state.step}: loss {loss_value:.4f}")
        return total_loss / max(seen, 1), wrong / max(seen, 1), ""

    def _all_ranks(self, loss: float, wrong: int, seen: int) -> tuple[float, int, int]:
        """One step's mean loss, errors and images over every rank (what a single process would report
        for the global batch); the values themselves in a single process."""
        if self.rank is None:
            return loss, wrong, seen
        totals = torch.tensor([loss * seen, wrong, seen], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(totals)
        return float(totals[0] / max(totals[2], 1)), int(totals[1]), int(totals[2])

    def _end_epoch(self, model: TransferClassifier, optimizer, scheduler, state: _State, epoch: int,
                   train_loss: float, train_error: float, valid_x: torch.Tensor | None, note: str,
                   seconds: float) -> None:
        """Validation, metrics, the best model, the log line and the checkpoint of one epoch (in a
        distributed run rank 0 alone; the others go on to the next epoch's first batch and wait there)."""
        config = self.config
        if self.rank is not None and not self.rank.is_main:
            state.epoch = epoch
            return
        model = getattr(model, "module", model)
        valid_error = self._valid_error(model, valid_x)
        seconds = round(seconds, 3)
        record = {"epoch": epoch, "train_loss": train_loss, "train_error": train_error, "valid_error": valid_error,
                  "seconds": seconds}
        state.history.append(record)
        for name in ("train_loss", "train_error", "valid_error"):
            self.reporter.metric(name, epoch, record[name])
        improved = valid_error < state.best_error
        if improved:
            state.best_error, state.best_epoch = valid_error, epoch
            if config.save_best:
                replace_atomically(self.best_path, functools.partial(torch.save, model.state_dict()))
        self.reporter.log(f"epoch {epoch}/{config.max_epoch}: train loss {train_loss:.4f}, "
                          f"train error {train_error:.4f}, valid error {valid_error:.4f}"
                          f"{' (best)' if improved else ''} [{seconds:.1f} s{'; ' + note if note else ''}]")
        state.epoch = epoch
        checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict() if scheduler is not None else {},
                      "epoch": epoch, "best_error": state.best_error, "best_epoch": state.best_epoch,
                      "step": state.step, "history": json.dumps(state.history)}
        replace_atomically(self.checkpoint_path, functools.partial(torch.save, checkpoint))

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


class SameBatchesSampler(DistributedSampler):
    """A DistributedSampler (set_epoch, padding, one share per rank) dealing out the very permutation
    the single process's shuffling DataLoader draws from its generator seeded with seed * 1000 + epoch
    (the DataLoader takes one 64-bit base seed from it before the sampler's randperm). Rank r's k-th
    batch of b holds positions k*B + r, k*B + r + world, ... of it, so the ranks' k-th batches together
    are the single process's k-th batch of B = b * world: the same global batches, the same loss curve."""

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        torch.empty((), dtype=torch.int64).random_(generator=generator)  # as DataLoader's _base_seed
        order = torch.randperm(len(self.dataset), generator=generator).tolist()
        order = (order * math.ceil(self.total_size / max(len(order), 1)))[:self.total_size]  # pad as it does
        return iter(order[self.rank:self.total_size:self.num_replicas])


def _freeze_batch_norm(module: nn.Module) -> None:
    """Fine-tuning a pretrained network: BatchNorm keeps its pretrained statistics (its scale and
    shift still learn). In training mode it would normalise with each batch's statistics instead and
    move its running ones towards the new data, so the features the warmed-up head was fitted on would
    change under it at the first step (Keras's transfer-learning guide gives the same advice)."""
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.eval()


@dataclass
class _State:
    """Where a run stands: the last finished epoch, the best so far, the step count, the history."""

    epoch: int = 0
    best_error: float = math.inf
    best_epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)


class _FeatureProgress:
    """Images done / to do while bottleneck features are computed (training and validation together)."""

    def __init__(self, reporter: Reporter, total: int) -> None:
        self.reporter, self.total, self.done = reporter, total, 0

    def advance(self, count: int) -> None:
        self.done += count
        self.reporter.progress(min(self.done, self.total), self.total)


def config_dict(config: TrainConfig) -> dict:
    return asdict(config)


def _rank_main(rank: distributed.Rank, reporter, workdir: Path, backbone_id: str, train: ClassificationData,
               valid: ClassificationData, config: TrainConfig, cache_dir: Path, resume: bool) -> dict:
    """One process of a distributed run (spawned by distributed.launch): the usual loop in DDP form."""
    trainer = Trainer(backbone_id, train, valid, config, workdir, reporter, cache_dir=cache_dir, rank=rank)
    result = trainer.run(resume=resume)
    return {"history": result.history, "best_epoch": result.best_epoch}


def _spec(trainer: Trainer, resume: bool, master_port: int) -> dict:
    """A distributed run as JSON, for the other nodes (training/distributed.py's `join`)."""
    return {"backbone_id": trainer.backbone_id, "train_csv": str(trainer.train_data.csv_path),
            "valid_csv": str(trainer.valid_data.csv_path), "config": asdict(trainer.config),
            "workdir": str(trainer.workdir), "cache_dir": str(trainer.cache_dir), "resume": resume,
            "master_port": master_port}


def join_run(spec: dict, node_rank: int, reporter: Reporter) -> None:
    """This node's processes of a multi-node run node 0 started (same job folder, shared storage)."""
    from nnc_web.engine.training.data import load_classification_csv

    config, placement = distributed.join_placement(spec, node_rank)
    args = (spec["backbone_id"], load_classification_csv(Path(spec["train_csv"])),
            load_classification_csv(Path(spec["valid_csv"])), config, Path(spec["cache_dir"]), spec["resume"])
    distributed.join_launch(_rank_main, Path(spec["workdir"]), args, placement, reporter)
