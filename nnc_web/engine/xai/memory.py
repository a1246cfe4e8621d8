"""The memory guard of the explanation methods: a batch that would not fit is refused (or made smaller)
before it runs, and an out-of-memory error that still happens becomes a clear message.

A batch of N images of S x S pixels with gradients needs about N * S^2 * `saved_bytes_per_pixel` for
what autograd keeps (measured per backbone with saved-tensor hooks, see model_store) and as much again
for the backward pass; without gradients, a quarter of that is a generous bound."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from nnc_web.engine.errors import UserError

GiB = 1024 ** 3
USABLE = 0.8  # of what is free: the rest is for the process itself and whatever else runs


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def batch_bytes(batch: int, size: int, saved_bytes_per_pixel: int, gradients: bool) -> int:
    per_image = size * size * saved_bytes_per_pixel
    return int(batch * per_image * (2.0 if gradients else 0.25))


def largest_batch(wanted: int, size: int, saved_bytes_per_pixel: int, gradients: bool,
                  device: torch.device) -> int:
    """The largest batch up to `wanted` that fits in memory now; 0 when not even one image does."""
    free = available_bytes(device) * USABLE
    one = batch_bytes(1, size, saved_bytes_per_pixel, gradients)
    return max(0, min(wanted, int(free // max(one, 1))))


def check_batch(batch: int, size: int, saved_bytes_per_pixel: int, gradients: bool, device: torch.device,
                name: str = "batch_size") -> None:
    """Refuse a batch that would not fit, saying what would."""
    need = batch_bytes(batch, size, saved_bytes_per_pixel, gradients)
    free = available_bytes(device)
    if need > free * USABLE:
        fits = largest_batch(batch, size, saved_bytes_per_pixel, gradients, device)
        advice = f"lower {name} to {fits} or less" if fits else "use a smaller input size or a machine with more memory"
        raise UserError(f"{name} {batch} at {size} x {size} px needs about {need / GiB:.1f} GiB of memory, "
                        f"and {free / GiB:.1f} GiB are free on {device.type}: {advice}")


def fitted_batch(wanted: int, size: int, saved_bytes_per_pixel: int, gradients: bool,
                 device: torch.device) -> int:
    """An internal batch size made to fit (at least one image, else a clear refusal)."""
    fits = largest_batch(wanted, size, saved_bytes_per_pixel, gradients, device)
    if fits == 0:
        need = batch_bytes(1, size, saved_bytes_per_pixel, gradients)
        raise UserError(f"one image at {size} x {size} px needs about {need / GiB:.1f} GiB of memory, and "
                        f"{available_bytes(device) / GiB:.1f} GiB are free on {device.type}: use a smaller "
                        "input size or a machine with more memory")
    return fits


@contextmanager
def memory_errors(hint: str) -> Iterator[None]:
    """An out-of-memory error during the computation as a UserError with `hint` (what to lower)."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:
        raise UserError(f"out of GPU memory: {hint}") from exc
    except RuntimeError as exc:
        text = str(exc)
        if "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text:
            raise UserError(f"out of memory: {hint}") from exc
        raise
