"""SHAP for images as NNC's plugin estimates it: expected gradients (captum's GradientShap, no added
noise): for each of `num_samples` draws, a random background image b and t ~ U(0, 1), the gradient
of the class score at b + t (x - b) times (x - b); the mean over draws. Seeded (NNC's is not). At an
interim layer (captum's LayerGradientShap) the values are the layer's, summed over its channels and
upsampled to the input size."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from captum.attr import GradientShap, LayerAttribution, LayerGradientShap
from torch import nn

from nnc_web.engine.reporting import Reporter, check_stop
from nnc_web.engine.xai.classifier import ImageClassifier
from nnc_web.engine.xai.seeding import seeded


def expected_gradients(classifier: ImageClassifier, unit: torch.Tensor, background: torch.Tensor,
                       class_index: int, num_samples: int, batch_size: int, seed: int = 0,
                       layer: nn.Module | None = None, reporter: Reporter | None = None,
                       on_samples: Callable[[int], None] | None = None) -> np.ndarray:
    """SHAP values (S, S), summed over channels, of `unit` (3, S, S) in [0, 1] against `background`
    (B, 3, S, S); the draws are taken `batch_size` at a time (`on_samples(done)` after each)."""
    model = classifier.pixel_model()
    method = GradientShap(model) if layer is None else LayerGradientShap(model, layer)
    inputs = unit.unsqueeze(0).to(classifier.device)
    baselines = background.to(classifier.device)
    total = None
    with seeded(seed, classifier.device):
        for start in range(0, num_samples, batch_size):
            if reporter is not None:
                check_stop(reporter)
            draws = min(batch_size, num_samples - start)
            values = method.attribute(inputs, baselines=baselines, n_samples=draws, stdevs=0.0,
                                      target=class_index).detach()
            total = values * draws if total is None else total + values * draws
            if on_samples is not None:
                on_samples(start + draws)
    values = (total / num_samples).sum(dim=1, keepdim=True)
    if values.shape[-2:] != unit.shape[-2:]:
        values = LayerAttribution.interpolate(values, tuple(unit.shape[-2:]), interpolate_mode="bilinear")
    return values[0, 0].float().cpu().numpy()
