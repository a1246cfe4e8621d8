"""What the detector's and the segmenter's loops need inside a distributed run (training/distributed.py
launches the ranks): the model in DistributedDataParallel with BatchNorm statistics over every rank's
images, each rank's share of the single process's batches, a cancel every rank sees at the same batch,
and sums over the ranks. With the loss divided by the global batch's count (objects, labelled pixels)
rather than each rank's own, a run of `world` processes takes the step one process takes on the same
global batch (to rounding: tests/engine/test_distributed_detection.py compares them in float64).

Several machines as the classifier's: node 0 leaves the run's spec (the trainer's kind, the datasets'
CSVs, the class names, the config) in the shared job folder, and a node that joins rebuilds the same
entry and arguments from it (join_node)."""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nnc_web.engine.reporting import JobCancelled, Reporter, UserError
from nnc_web.engine.training import distributed


def rank_batch(batch_size: int, world: int) -> int:
    """Images per process and step: batch_size split over the processes (rounded down)."""
    return batch_size // world


def describe_batches(placement: distributed.Placement, batch_size: int) -> str:
    """The log line of a distributed run; a batch_size smaller than the processes is refused, one that
    does not split evenly is said to be rounded down (the global batch is what every step sees)."""
    world = placement.world
    per = rank_batch(batch_size, world)
    if per < 1:
        raise UserError(f"batch_size is {batch_size}, but the run has {world} training processes: each needs at "
                        f"least one image a step; raise batch_size to {world} or more, or lower devices")
    rounded = (f"; batch_size {batch_size} is not a multiple of {world}, so it was rounded down to {per * world}"
               if per * world != batch_size else "")
    return f"distributed training: {placement.describe()}, global batch {per * world} ({per} per process){rounded}"


def rank_loader(dataset: Dataset, batch_size: int, seed: int, epoch: int, rank: distributed.Rank,
                collate_fn=None) -> DataLoader:
    """This rank's share of the batches a single process draws with its generator seeded seed + epoch."""
    from nnc_web.engine.training.trainer import SameBatchesSampler

    sampler = SameBatchesSampler(dataset, rank.world, rank.rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_size=rank_batch(batch_size, rank.world), sampler=sampler, collate_fn=collate_fn)


def train_in_processes(trainer, spec: Callable[[int], dict], entry, args: tuple, placement: distributed.Placement,
                       make_model: Callable[[], nn.Module]) -> tuple[nn.Module, dict]:
    """A distributed run of a classifier's, detector's or segmenter's `trainer`: launch this node's ranks
    (each runs `entry`), relay rank 0's reports, then load into a model of `make_model` what rank 0 wrote
    (the best epoch, or the last), as a single run returns it, with rank 0's outcome (history, best epoch).
    On several machines, node 0 holds the rendezvous port and leaves `spec(port)` for the other nodes
    while its ranks run. The model is made after the ranks end: the launcher holds no GPU memory while
    they train."""
    trainer.reporter.log(describe_batches(placement, trainer.config.batch_size))
    if placement.nodes:
        placement.master_port = distributed.rendezvous_port(placement)
    try:
        if placement.nodes:
            distributed.write_spec(trainer.workdir, spec(placement.master_port))
        outcome = distributed.launch(entry, trainer.workdir, args, placement, trainer.reporter,
                                     on_start=lambda processes: setattr(trainer, "processes", processes))
    finally:  # a node joining later must not find this attempt's spec or port; a store no launch took is closed
        if placement.nodes:
            (trainer.workdir / distributed.SPEC_NAME).unlink(missing_ok=True)
            distributed.release_port(placement.master_port)
    model = make_model().to(trainer.device)
    saved = torch.load(trainer.checkpoint_path, map_location=trainer.device, weights_only=True)
    model.load_state_dict(saved["model"])
    if trainer.config.save_best and trainer.best_path.exists():
        model.load_state_dict(torch.load(trainer.best_path, map_location=trainer.device, weights_only=True))
    return model, outcome


def node_spec(trainer, kind: str, resume: bool, master_port: int) -> dict:
    """The detector's or segmenter's run as JSON, for the other nodes: everything in it is read back from
    the shared storage (the datasets' CSVs as the plugins load them)."""
    return {"kind": kind, "train_csv": str(trainer.train_data.csv_path), "valid_csv": str(trainer.valid_data.csv_path),
            "class_names": list(trainer.class_names), "config": asdict(trainer.config), "workdir": str(trainer.workdir),
            "resume": resume, "master_port": master_port}


def join_node(spec: dict, node_rank: int, reporter: Reporter, load: Callable[[Path], object], entry: Callable) -> None:
    """This node's processes of a detector's or segmenter's multi-node run: `entry` (the trainer's
    _rank_main) on the datasets `load` reads from the spec's CSVs, as node 0's ranks run it."""
    config, placement = distributed.join_placement(spec, node_rank)
    args = (load(Path(spec["train_csv"])), load(Path(spec["valid_csv"])), list(spec["class_names"]), config,
            bool(spec["resume"]))
    distributed.join_launch(entry, Path(spec["workdir"]), args, placement, reporter)


def check_stop_together(reporter: Reporter, rank: distributed.Rank) -> None:
    """Rank 0 asks the job and broadcasts the answer, so every rank stops at the same batch."""
    flag = torch.tensor([1 if reporter.should_stop() else 0], device=rank.device)
    torch.distributed.broadcast(flag, src=0)
    if flag.item():
        raise JobCancelled("cancelled by the user")


def summed(values: list[float] | torch.Tensor, rank: distributed.Rank) -> list[float]:
    """The values added up over every rank."""
    totals = torch.as_tensor(values, dtype=torch.float64).to(rank.device)
    torch.distributed.all_reduce(totals)
    return totals.tolist()


def wrap(model: nn.Module, rank: distributed.Rank) -> nn.Module:
    """DistributedDataParallel (every rank starts from rank 0's weights and buffers), its BatchNorm layers
    normalising a training batch with the statistics of the global batch, as one process would."""
    for module in model.modules():
        if (isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, nn.SyncBatchNorm)
                and type(module) not in _GROUP_CLASSES.values()):  # a model wrapped twice stays as it is
            # A subclass per layer type: timm's BatchNormAct2d keeps its activation after the norm.
            module.__class__ = _group_class(type(module))
    on_gpu = rank.device.type == "cuda"
    return nn.parallel.DistributedDataParallel(model, device_ids=[rank.device.index] if on_gpu else None)


_GROUP_CLASSES: dict[type, type] = {}


def _group_class(base: type) -> type:
    if base not in _GROUP_CLASSES:
        _GROUP_CLASSES[base] = type(f"Group{base.__name__}", (base,), {"forward": _group_forward, "base": base,
                                                                         "__module__": __name__})
    return _GROUP_CLASSES[base]


def _group_forward(self, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over the images of every rank (nn.SyncBatchNorm takes GPUs only; this also runs on gloo
    and CPU). Evaluation uses the running statistics, as a single process does."""
    if not self.training:
        return self.base.forward(self, x)
    out, mean, var, count = _GlobalBatchNorm.apply(x, self.weight, self.bias, self.eps)
    if self.track_running_stats:
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            unbiased = var * count / (count - 1).clamp(min=1)
            self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
            self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
    if hasattr(self, "act"):  # timm's BatchNormAct2d
        out = self.act(self.drop(out))
    return out


def _channel_view(t: torch.Tensor, dims: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    return t.view([1, -1] + [1] * (dims - 2)).to(dtype or t.dtype)


class _GlobalBatchNorm(torch.autograd.Function):
    """A training step of BatchNorm whose statistics are those of the global batch: the per-channel sums
    over every rank's images are all-reduced in the forward, and the backward all-reduces the two sums
    its closed form needs (nn.SyncBatchNorm's scheme). The sums are float64, as the CPU kernel
    accumulates them: in float32 the gradient was 4 % off the single process's on 1x1 feature maps of
    four images (against 0.25 % between the kernel's float32 and float64), enough to move a loss curve."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):  # noqa: ANN001, ANN205 (autograd's signature)
        dims = [0, *range(2, x.dim())]
        local = torch.cat([x.new_tensor([x.numel() / x.shape[1]], dtype=torch.float64),
                           x.sum(dims, dtype=torch.float64)])  # the count and the sums in one all_reduce
        torch.distributed.all_reduce(local)
        count, mean = local[:1], local[1:] / local[:1]
        centred = x - _channel_view(mean, x.dim()).to(x.dtype)
        var = (centred * centred).sum(dims, dtype=torch.float64)  # two passes: no E[x^2] - E[x]^2 cancellation
        torch.distributed.all_reduce(var)
        var /= count
        invstd = torch.rsqrt(var + eps)
        normalised = centred * _channel_view(invstd, x.dim()).to(x.dtype)
        ctx.save_for_backward(normalised, invstd, weight, count)
        out = normalised
        if weight is not None:
            out = out * _channel_view(weight, x.dim()) + _channel_view(bias, x.dim())
        mean, var = mean.to(x.dtype), var.to(x.dtype)
        ctx.mark_non_differentiable(mean, var, count)
        return out, mean, var, count

    @staticmethod
    def backward(ctx, grad_out, *_):  # noqa: ANN001, ANN205
        normalised, invstd, weight, count = ctx.saved_tensors
        dims = [0, *range(2, grad_out.dim())]
        local = torch.cat([grad_out.sum(dims, dtype=torch.float64), (grad_out * normalised).sum(dims, dtype=torch.float64)])
        channels = normalised.shape[1]
        # The parameters take this rank's share (DDP adds the ranks'), the input the global batch's sums.
        grad_bias, grad_weight = local[:channels].to(grad_out.dtype), local[channels:].to(grad_out.dtype)
        total = local.clone()  # .to() above is no copy in float64: all-reducing `local` would change them
        torch.distributed.all_reduce(total)
        mean_grad, mean_grad_normalised = total[:channels] / count, total[channels:] / count
        scale = invstd if weight is None else invstd * weight
        view = functools.partial(_channel_view, dims=grad_out.dim(), dtype=grad_out.dtype)
        grad_x = (grad_out - view(mean_grad) - normalised * view(mean_grad_normalised)) * view(scale)
        if weight is None:
            return grad_x, None, None, None
        return grad_x, grad_weight, grad_bias, None
