"""What PaDiM and PatchCore share: the backbone's layers, the kept channels, batched prediction."""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nnc_web.engine.anomaly.features import (
    AUTO,
    LayerFeatures,
    feature_shapes,
    flatten_selection,
    image_batches,
    image_transform,
    parse_feature_ratio,
    select_channels,
    split_selection,
)
from nnc_web.engine.anomaly.maps import smooth_map
from nnc_web.engine.imaging import DEFAULT_MAX_PIXELS
from nnc_web.engine.model_store import get_backbone
from nnc_web.engine.reporting import Reporter, UserError, check_stop


@dataclass
class Prediction:
    scores: np.ndarray  # (N,) image anomaly scores
    maps: list[np.ndarray]  # N blurred per-pixel maps at input_size x input_size (float32)


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def memory_budget(device: torch.device) -> int:
    """Half of this machine's memory, and on a GPU at most 90 % of what is free on it now."""
    budget = physical_memory() // 2
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = min(budget, int(free * 0.9))
    return budget


def check_memory(needed: int, what: str, advice: str, device: torch.device | str = "cpu") -> None:
    """Refuse before allocating when a model would take more than `memory_budget`."""
    budget = memory_budget(torch.device(device))
    if needed > budget:
        raise UserError(f"{what} would need {needed / 2**30:.1f} GiB, over the {budget / 2**30:.1f} GiB this "
                        f"machine can give it: {advice}")


class AnomalyModel:
    """A frozen backbone's mid-level features plus statistics of normal images (set by `fit`)."""

    method = ""
    title = ""
    layer_slice = slice(None)
    auto_dims: int | None = None  # what feature_ratio `auto` keeps (None: every channel)
    auto_note = "every channel"  # ... in words, for the log

    def __init__(self, backbone_id: str, input_size: int = 224, feature_ratio: float | str = AUTO, seed: int = 0,
                 channels: torch.Tensor | None = None, pretrained: bool = True,
                 device: torch.device | str = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if input_size % 32 or not 64 <= input_size <= 1024:
            raise UserError("input_size must be a multiple of 32 between 64 and 1024")
        spec = get_backbone(backbone_id)
        self.backbone_id, self.input_size, self.seed = backbone_id, input_size, seed
        self.feature_ratio = parse_feature_ratio(feature_ratio)
        self.layers = spec.feature_layers[self.layer_slice]
        self.device = torch.device(device)
        self.max_pixels = max_pixels
        shapes = feature_shapes(backbone_id, self.layers, input_size)
        self.layer_channels = [channels for channels, _, _ in shapes]
        self.grids = [(height, width) for _, height, width in shapes]
        self.extractor = LayerFeatures(backbone_id, self.layers, pretrained).to(self.device)
        if self.device.type != "cpu":  # NHWC was measured faster on CPUs only (features.py)
            self.extractor.body.to(memory_format=torch.contiguous_format)
        if channels is None:
            channels = flatten_selection(select_channels(self.layer_channels, self.feature_ratio, seed,
                                                         self.auto_dims), self.layer_channels)
        self.channels = channels.long().cpu()
        self._selection = [s.to(self.device) for s in split_selection(self.channels, self.layer_channels)]
        self.transform = image_transform(backbone_id, input_size)
        self.fitted = False

    @property
    def dim(self) -> int:
        return int(self.channels.numel())

    def channel_line(self) -> str:
        """`PaDiM: 100 of 176 channels (...)`: what the log says before fitting."""
        how = f"auto: {self.auto_note}" if self.feature_ratio == AUTO else f"feature_ratio {self.feature_ratio:g}"
        return f"{self.title}: {self.dim} of {sum(self.layer_channels)} channels ({how})"

    def selected_layers(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [f.index_select(1, keep) for f, keep in zip(self.extractor(images.to(self.device)), self._selection,
                                                           strict=True)]

    # Implemented by each method.
    def fit(self, paths: Sequence[Path], reporter: Reporter, batch_size: int = 16) -> None:
        raise NotImplementedError

    def score_batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (image scores (B,), blurred maps (B, input_size, input_size))."""
        raise NotImplementedError

    def state(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def settings(self) -> dict:
        return {"method": self.method, "backbone": self.backbone_id, "input_size": self.input_size,
                "feature_ratio": self.feature_ratio, "seed": self.seed, "layers": list(self.layers),
                "dim": self.dim}

    def blurred(self, patch_scores: torch.Tensor) -> torch.Tensor:
        return smooth_map(patch_scores, self.input_size)

    def training_batches(self, paths: Sequence[Path], batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
        if len(paths) < 2:
            raise UserError("the training dataset needs at least 2 normal images")
        return image_batches(paths, self.transform, batch_size, self.max_pixels)

    @torch.no_grad()
    def predict(self, paths: Sequence[Path], reporter: Reporter | None = None, batch_size: int = 16,
                on_batch=None) -> Prediction:
        """Scores and maps of every image, in order. `on_batch(start, scores, maps)` sees each batch
        (to write files as they come instead of holding every map)."""
        if not self.fitted:
            raise UserError("the model has not been fitted")
        scores: list[np.ndarray] = []
        maps: list[np.ndarray] = []
        for start, batch in image_batches(paths, self.transform, batch_size, self.max_pixels):
            if reporter is not None:
                check_stop(reporter)
            batch_scores, batch_maps = self.score_batch(batch)
            batch_scores, batch_maps = batch_scores.float().cpu().numpy(), batch_maps.float().cpu().numpy()
            scores.append(batch_scores)
            if on_batch is not None:
                on_batch(start, batch_scores, batch_maps)
            else:
                maps.extend(batch_maps)
            if reporter is not None:
                reporter.progress(start + len(batch), len(paths))
        return Prediction(np.concatenate(scores) if scores else np.zeros(0, np.float32), maps)
