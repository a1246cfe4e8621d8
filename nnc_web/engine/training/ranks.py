"""What the detector's and the segmenter's loops need inside a distributed run (training/distributed.py
launches the ranks): the model in DistributedDataParallel with BatchNorm statistics over every rank's
images, each rank's share of the single process's batches, a cancel every rank sees at the same batch,
and sums over the ranks. With the loss divided by the global batch's count (objects, labelled pixels)
rather than each rank's own, a run of `world` processes takes the steps one process takes on the same
global batch, so the two follow the same loss curve."""
from __future__ import annotations

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
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, nn.SyncBatchNorm):
            # A subclass per layer type: timm's BatchNormAct2d keeps its activation after the norm.
            module.__class__ = _group_class(type(module))
    on_gpu = rank.device.type == "cuda"
    return nn.parallel.DistributedDataParallel(model, device_ids=[rank.device.index] if on_gpu else None)


_GROUP_CLASSES: dict[type, type] = {}


def _group_class(base: type) -> type:
    if base not in _GROUP_CLASSES:
        _GROUP_CLASSES[base] = type(f"Group{base.__name__}", (base,), {"forward": _group_forward,
                                                                         "__module__": __name__})
    return _GROUP_CLASSES[base]


def _group_forward(self, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over the images of every rank (nn.SyncBatchNorm takes GPUs only, this also gloo on CPU):
    the mean and variance are summed over the ranks with a differentiable all_reduce, so the gradient
    also flows through the statistics as in a single process. Evaluation uses the running statistics."""
    base = type(self).__mro__[1]
    if not self.training:
        return base.forward(self, x)
    from torch.distributed.nn.functional import all_reduce

    dims = [0, *range(2, x.dim())]
    shape = [1, -1] + [1] * (x.dim() - 2)
    local = x.new_tensor([x.numel() / x.shape[1]])
    count = all_reduce(local.detach().clone())
    mean = all_reduce(x.sum(dims)) / count  # two passes, as the single process's kernel, not E[x^2] - E[x]^2
    var = all_reduce(((x - mean.view(shape)) ** 2).sum(dims)) / count
    if self.track_running_stats:
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            unbiased = var * count / (count - 1).clamp(min=1)
            self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
            self.running_var.mul_(1 - factor).add_(unbiased.detach(), alpha=factor)
    out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
    if self.affine:
        out = out * self.weight.view(shape) + self.bias.view(shape)
    if hasattr(self, "act"):  # timm's BatchNormAct2d
        out = self.act(self.drop(out))
    return out
