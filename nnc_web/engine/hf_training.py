"""The training loop shared by the Hugging Face trainers (DETR, SegFormer), as EasyMaker's Hugging Face
Trainer runs them: AdamW at the given learning rate decaying linearly to zero over all steps (the
Trainer's default schedule), gradients clipped at norm 1.0, a log line every `logging_steps`.
Like the offline trainers: a checkpoint each epoch, resume, cancel within a batch, progress, the per-step
`loss` and per-epoch history entries (the live curves), the best epoch by a validation score."""
from __future__ import annotations

import functools
import json
import pickle
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nnc_web.engine.atomic import replace_atomically
from nnc_web.engine.reporting import Reporter, UserError, check_stop

MAX_GRAD_NORM = 1.0  # the Hugging Face Trainer's default


@dataclass
class LoopSpec:
    parts: tuple[str, ...]  # loss parts averaged per epoch (the step function returns them with "loss")
    best_key: str  # the history key that picks the best epoch (higher is better)
    describe: Callable[[dict], str]  # the epoch's log line from its history record


@dataclass
class LoopResult:
    history: list[dict]
    best_epoch: int


@dataclass
class _State:
    epoch: int = 0
    best: float = -1.0
    best_epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)


def linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / max(total_steps, 1)))


def train_loop(model: torch.nn.Module, *, learning_rate: float, epochs: int, logging_steps: int,
               batches: Callable[[int], Iterable], step: Callable[[torch.nn.Module, object], dict],
               validate: Callable[[torch.nn.Module], dict], spec: LoopSpec, workdir: Path, reporter: Reporter,
               resume: bool = False, save_best: bool = True) -> LoopResult:
    """`batches(epoch)`: that epoch's batches (a sized iterable); `step(model, batch)`: loss tensors;
    `validate(model)`: the epoch's validation scores (history keys)."""
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint_path, best_path = workdir / "checkpoint.pt", workdir / "best.pt"
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate,
                                  weight_decay=0.0)
    per_epoch = len(batches(1))
    scheduler = linear_schedule(optimizer, per_epoch * epochs)
    state = _State()
    if resume and checkpoint_path.exists():
        state = _resume(checkpoint_path, model, optimizer, scheduler, reporter)
    device = next(model.parameters()).device
    for epoch in range(state.epoch + 1, epochs + 1):
        started = time.monotonic()
        model.train()
        sums = dict.fromkeys(("loss", *spec.parts), 0.0)
        seen = 0
        for number, batch in enumerate(batches(epoch), start=1):
            check_stop(reporter)
            parts = step(model, batch)
            optimizer.zero_grad()
            parts["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
            optimizer.step()
            scheduler.step()
            state.step += 1
            count = len(batch[0])
            for name in sums:
                sums[name] += float(parts[name].item()) * count
            seen += count
            reporter.metric("loss", state.step, parts["loss"].item())
            reporter.progress((epoch - 1) * per_epoch + number, epochs * per_epoch)
            if logging_steps and state.step % logging_steps == 0:
                reporter.log(f"step {state.step}: loss {parts['loss'].item():.4f}, learning rate "
                             f"{scheduler.get_last_lr()[0]:.3g}")
        model.eval()
        with torch.no_grad():
            scores = validate(model)
        record = {"epoch": epoch, "train_loss": sums["loss"] / max(seen, 1),
                  **{name: sums[name] / max(seen, 1) for name in spec.parts}, **scores,
                  "seconds": round(time.monotonic() - started, 3)}
        state.history.append(record)
        for name, value in record.items():
            if name not in ("epoch", "seconds"):
                reporter.metric(name, epoch, value)
        improved = record[spec.best_key] > state.best
        if improved:
            state.best, state.best_epoch = record[spec.best_key], epoch
            if save_best:
                replace_atomically(best_path, functools.partial(torch.save, model.state_dict()))
        reporter.log(f"epoch {epoch}/{epochs}: {spec.describe(record)}{' (best)' if improved else ''} "
                     f"[{record['seconds']:.1f} s]")
        state.epoch = epoch
        checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "epoch": epoch, "best": state.best,
                      "best_epoch": state.best_epoch, "step": state.step, "history": json.dumps(state.history)}
        replace_atomically(checkpoint_path, functools.partial(torch.save, checkpoint))
    if save_best and best_path.exists():
        model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
        reporter.log(f"kept the best model: epoch {state.best_epoch}, {spec.best_key} {state.best:.4f}")
    model.eval()
    return LoopResult(state.history, state.best_epoch)


def _resume(path: Path, model, optimizer, scheduler, reporter: Reporter) -> _State:
    try:
        saved = torch.load(path, map_location=next(model.parameters()).device, weights_only=True)
        model.load_state_dict(saved["model"])
    except (EOFError, RuntimeError, KeyError, pickle.UnpicklingError) as exc:
        raise UserError(f"the checkpoint of this run cannot be read ({type(exc).__name__}): start a new run") from exc
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    reporter.log(f"resuming after epoch {saved['epoch']} from the checkpoint")
    return _State(saved["epoch"], saved["best"], saved["best_epoch"], saved["step"], json.loads(saved["history"]))
