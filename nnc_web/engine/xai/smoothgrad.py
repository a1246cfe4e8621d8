"""SmoothGrad (Smilkov et al., 2017) as sony/nnc-plugin has it, through captum's NoiseTunnel over
Saliency: Gaussian noise of std = noise_level x (max - min) of the preprocessed image, the squared
gradients of the class score averaged over the noisy copies (`smoothgrad_sq`), summed over channels."""
from __future__ import annotations

import numpy as np
import torch
from captum.attr import NoiseTunnel, Saliency

from nnc_web.engine.reporting import Reporter, check_stop
from nnc_web.engine.xai.classifier import ImageClassifier
from nnc_web.engine.xai.seeding import seeded


def smoothgrad(classifier: ImageClassifier, inputs: torch.Tensor, class_index: int, noise_level: float,
               num_samples: int, batch_size: int, seed: int = 0, reporter: Reporter | None = None) -> np.ndarray:
    """(S, S) map of one normalised input (1, 3, S, S): sum over channels of the mean squared gradient."""
    model = classifier.model

    def forward(x: torch.Tensor) -> torch.Tensor:
        if reporter is not None:
            check_stop(reporter)
        return model(x)

    spread = float(inputs.max() - inputs.min())
    tunnel = NoiseTunnel(Saliency(forward))
    with seeded(seed, classifier.device):
        values = tunnel.attribute(inputs, nt_type="smoothgrad_sq", nt_samples=num_samples,
                                  nt_samples_batch_size=max(1, batch_size), stdevs=noise_level * spread,
                                  target=class_index, abs=True)
    return values.detach()[0].abs().sum(dim=0).float().cpu().numpy()
