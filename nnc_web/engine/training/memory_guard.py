"""Training's memory guard: before the first epoch, a run whose training step would not fit in memory is
refused with what to lower, instead of failing minutes later with an out-of-memory error (or, on a CPU
machine, the kernel killing the worker and the job ending "worker lost").

One forward pass of a single image at the run's input size, under saved-tensor hooks, measures what
autograd keeps for an image with this very model (its own layers, heads and attention, frozen parts
excluded). A step holds that for the whole batch, some more during the backward pass, and the
weights with their gradients and the optimizer's two moments (Adam's; SGD keeps less)."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from nnc_web.engine.errors import UserError
from nnc_web.engine.training.ranks import rank_batch
from nnc_web.engine.xai.memory import USABLE, GiB, available_bytes

# What autograd keeps, times this for the backward pass's own buffers: a CPU detector step at batch 4
# grew the process by 1.16x what the hooks counted; 1.5 leaves room for a GPU allocator's cache and cuDNN.
BACKWARD_FACTOR = 1.5
PARAMETER_COPIES = 4  # weights, gradients, two optimizer moments


def saved_bytes_per_image(model: nn.Module, forward: Callable[[torch.Tensor], object], size: int,
                          device: torch.device) -> int:
    """Bytes autograd keeps for one image of size x size through `forward` (each storage counted once)."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    was_training = model.training
    model.eval()  # the probe must not move BatchNorm's running statistics
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            forward(torch.zeros(1, 3, size, size, device=device))
    finally:
        model.train(was_training)
    return sum(storages.values())


def trained_bytes(parameters: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() * p.element_size() for p in parameters if p.requires_grad)


def step_bytes(per_image: int, batch: int, parameters: Iterable[nn.Parameter] | int) -> int:
    """`parameters`: the model's, or their trained_bytes already summed."""
    trained = parameters if isinstance(parameters, int) else trained_bytes(parameters)
    return int(per_image * batch * BACKWARD_FACTOR + trained * PARAMETER_COPIES)


def check_step_fits(model: nn.Module, size: int, batch: int, device: torch.device, processes: int = 1,
                    forward: Callable[[torch.Tensor], object] | None = None) -> int:
    """Refuse a training step that would not fit, saying what would; the bytes it needs otherwise.
    `batch` is this process's share; `processes` share this device's memory (CPU ranks share the RAM)."""
    free = available_bytes(device) // max(processes, 1)  # before the probe: a GPU's allocator keeps its blocks
    per_image = saved_bytes_per_image(model, forward or model, size, device)
    parameters = trained_bytes(model.parameters())  # summed once: the search below asks for many batches
    need = step_bytes(per_image, batch, parameters)
    if need <= free * USABLE:
        return need
    fits = 0
    while fits < batch and step_bytes(per_image, fits + 1, parameters) <= free * USABLE:
        fits += 1
    what = f"batch_size {batch}" if processes == 1 else f"{batch} images per process ({processes} processes)"
    advice = (f"lower batch_size so that each process takes {fits} images or fewer" if fits and processes > 1
              else f"lower batch_size to {fits} or less" if fits
              else "lower input_size, or use a machine with more memory")
    raise UserError(f"a training step of {what} at {size} x {size} px needs about {need / GiB:.1f} GiB of "
                    f"memory, and {free / GiB:.1f} GiB are free on {device.type}: {advice}")


def check_run_fits(model: nn.Module, size: int, batch_size: int, device: torch.device, rank=None,
                   forward: Callable[[torch.Tensor], object] | None = None) -> int:
    """`check_step_fits` for a trainer: a distributed rank checks its share of the global batch, CPU ranks
    of one machine sharing its memory."""
    if rank is None:
        return check_step_fits(model, size, batch_size, device, 1, forward)
    return check_step_fits(model, size, rank_batch(batch_size, rank.world), device, rank.sharing, forward)
