"""Mid-level feature maps of a pretrained backbone, the input of PaDiM and PatchCore.

Forward hooks collect the model-store layers (strides 4, 8, 16) and stop the forward pass after the
last one, so the deeper half of the network is never run. Features are computed without gradients,
unless `differentiable` is set (the explanation methods' view of an anomaly score, engine.anomaly.explain). The kept channels are a fixed, seeded
random selection per layer (the PaDiM paper's reduction), saved with the model so that scores are
reproducible after reloading. `feature_ratio` `auto` keeps the method's own number of dimensions
(PaDiM: the paper's 100, whatever the backbone's width) instead of a share of the channels.

On a CPU the backbone runs channels-last, in slices of CPU_SLICE images: on Lite0 at 224 px that
halves the extraction time (51 images in batches of 16, 2 cores, medians of 6 interleaved runs: 1.81 s
as before, 1.36 s channels-last, 0.92 s channels-last in slices of 4; oneDNN's depthwise convolutions
are faster on NHWC, and a few images' activations stay in cache).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from nnc_web.engine.anomaly.options import AUTO, parse_feature_ratio  # noqa: F401 - re-exported
from nnc_web.engine.imaging import open_checked
from nnc_web.engine.model_store import get_backbone, load_backbone
from nnc_web.engine.reporting import UserError

CPU_SLICE = 4  # images per CPU forward pass without gradients (slices of 2: 0.99 s, 4: 0.92 s, 16: 1.36 s)


class _StopForward(Exception):
    """Raised by the hook of the deepest wanted layer: nothing after it needs to run."""


class LayerFeatures(nn.Module):
    """Runs a backbone up to its deepest wanted layer and returns those layers' outputs."""

    def __init__(self, backbone_id: str, layers: Sequence[str], pretrained: bool = True,
                 body: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone_id = backbone_id
        self.layers = tuple(layers)
        self.body = load_backbone(backbone_id, pretrained) if body is None else body
        self.body.to(memory_format=torch.channels_last)  # the CPU's layout (AnomalyModel undoes it on a GPU)
        self.differentiable = False  # True: gradients flow to the input and the layers (explanations)
        modules = dict(self.body.named_modules())
        missing = [name for name in self.layers if name not in modules]
        if missing:
            raise UserError(f"{backbone_id} has no layer {', '.join(missing)}")
        self._deepest = modules[self.layers[-1]]
        self._outputs: dict[str, torch.Tensor] = {}
        for name in self.layers:
            modules[name].register_forward_hook(self._keeper(name))

    def _keeper(self, name: str):
        def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
            self._outputs[name] = output

        return hook

    @staticmethod
    def _stop(module: nn.Module, inputs, output: torch.Tensor) -> None:
        raise _StopForward

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        grad = self.differentiable and torch.is_grad_enabled()
        if images.device.type != "cpu":
            return self._layers(images, grad)
        images = images.contiguous(memory_format=torch.channels_last)
        if grad or len(images) <= CPU_SLICE:
            return self._layers(images, grad)
        # One pass per slice; gradients never (an explanation's layer hooks expect one pass per forward).
        slices = [self._layers(part, False) for part in images.split(CPU_SLICE)]
        return [torch.cat(outputs) for outputs in zip(*slices, strict=True)]

    def _layers(self, images: torch.Tensor, grad: bool) -> list[torch.Tensor]:
        self._outputs = {}
        # The stop is hooked for this pass only, after every other hook of the deepest layer (Grad-CAM's,
        # registered just before the pass, must still see its output).
        stop = self._deepest.register_forward_hook(self._stop)
        try:
            with torch.set_grad_enabled(grad):
                self.body(images)
        except _StopForward:
            pass
        finally:
            stop.remove()
        outputs, self._outputs = self._outputs, {}
        return [outputs[name] for name in self.layers]


def feature_shapes(backbone_id: str, layers: Sequence[str], input_size: int) -> list[tuple[int, int, int]]:
    """(channels, height, width) of each layer at `input_size`, from the architecture alone: built and
    run on the meta device, so no weights are needed and nothing is computed."""
    with torch.device("meta"):
        features = LayerFeatures(backbone_id, layers, body=get_backbone(backbone_id).build().eval())
        outputs = features(torch.zeros(1, 3, input_size, input_size))
    return [(int(f.shape[1]), int(f.shape[2]), int(f.shape[3])) for f in outputs]


def kept_counts(channels: Sequence[int], ratio: float | str, auto_dims: int | None) -> list[int]:
    """Channels kept per layer: max(1, round(C * ratio)) for a number (NNC's rule); for `auto`,
    `auto_dims` in all (never more than the layers have; None: every channel) shared in proportion
    to the layers' widths by largest remainders, at least one per layer."""
    ratio = parse_feature_ratio(ratio)
    if ratio != AUTO:
        return [max(1, round(count * float(ratio))) for count in channels]
    total = sum(channels)
    wanted = total if auto_dims is None else max(len(channels), min(auto_dims, total))
    shares = [wanted * count / total for count in channels]
    counts = [max(1, int(share)) for share in shares]
    while sum(counts) < wanted:  # the largest remainders get the rest
        counts[max(range(len(counts)), key=lambda i: shares[i] - counts[i])] += 1
    while sum(counts) > wanted:  # narrow layers rounded up to one: take it back from the widest
        counts[max((i for i in range(len(counts)) if counts[i] > 1), key=lambda i: counts[i] - shares[i])] -= 1
    return counts


def select_channels(channels: Sequence[int], ratio: float | str, seed: int,
                    auto_dims: int | None = None) -> list[torch.Tensor]:
    """Per layer, a sorted random subset of `kept_counts` channel indices."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(count, generator=generator)[:keep].sort().values
            for count, keep in zip(channels, kept_counts(channels, ratio, auto_dims), strict=True)]


def flatten_selection(selection: Sequence[torch.Tensor], channels: Sequence[int]) -> torch.Tensor:
    """Per-layer indices -> one index into the concatenated channels (what the bundle stores)."""
    offsets = torch.tensor([0, *channels[:-1]]).cumsum(0)
    return torch.cat([index + offset for index, offset in zip(selection, offsets, strict=True)])


def split_selection(flat: torch.Tensor, channels: Sequence[int]) -> list[torch.Tensor]:
    bounds = torch.tensor([0, *channels]).cumsum(0)
    return [flat[(flat >= lo) & (flat < hi)] - lo for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def check_rgb(paths: Sequence[Path], what: str, max_pixels: int) -> None:
    """Every image must have three channels (NNC's rule for these plugins); names the offenders."""
    wrong = []
    for path in paths:
        try:
            with open_checked(path, max_pixels) as image:
                bands = len(image.getbands())
        except UserError as exc:
            raise UserError(f"{what} image {path.name}: {exc}") from exc
        if bands != 3:
            wrong.append(f"{path.name} ({bands} channel{'s' if bands != 1 else ''})")
    if wrong:
        more = f" and {len(wrong) - 5} more" if len(wrong) > 5 else ""
        raise UserError(f"the {what} images must be 3-channel RGB images; not: {', '.join(wrong[:5])}{more}. "
                        f"Create the dataset with channel = 3.")


def image_transform(backbone_id: str, size: int):
    """Resize the whole image to size x size (no crop: the map must cover every pixel), normalise."""
    from torchvision.transforms import v2

    spec = get_backbone(backbone_id)
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                       v2.Resize((size, size), antialias=True), v2.Normalize(spec.mean, spec.std)])


def load_rgb(path: Path, max_pixels: int) -> Image.Image:
    with open_checked(path, max_pixels) as image:
        return image.convert("RGB")


def image_batches(paths: Sequence[Path], transform, batch_size: int,
                  max_pixels: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(index of the first image, batch tensor) over `paths` in order."""
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        yield start, torch.stack([transform(load_rgb(p, max_pixels)) for p in chunk])
