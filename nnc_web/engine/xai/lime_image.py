"""LIME on superpixels (Ribeiro et al., 2016) as NNC's plugin does it, through captum's Lime: SLIC
segments (scikit-image, default settings), random masks keeping each segment with p = 0.5 (seeded),
hidden segments black (NNC's image x mask), the softmax score of the class (a one-output model's raw
score: an anomaly score), Ridge(alpha=1) on the masks without a kernel; the coefficients rank the
segments. Unlike NNC's one image per forward pass, the perturbed images go through the model
`batch_size` at a time."""
from __future__ import annotations

import numpy as np
import torch
from captum._utils.models.linear_model import SkLearnRidge
from captum.attr import Lime
from skimage.segmentation import slic

from nnc_web.engine.reporting import Reporter, check_stop
from nnc_web.engine.xai.classifier import ImageClassifier

BATCH = 64  # perturbed images per forward pass on a GPU
# On a CPU larger batches leave the cache: Lite0 at 224 px, 2 cores, ms a sample at batch 1 / 8 / 16 / 64:
# 24.1 / 21.2 / 31.2 / 41.6 as loaded (NCHW) and 32.0 / 19.1 / 23.5 / 32.9 channels-last (benchmarks/xai.py).
CPU_BATCH = 8

# SLIC's defaults (NNC's) first; on fine-grained noise they can merge the image into one or two
# segments (connectivity enforcement swallows the fragments), so then smoothing and compactness go up.
SLIC_SETTINGS = ((10.0, 0.0), (10.0, 1.0), (30.0, 1.0), (100.0, 1.0))  # (compactness, sigma)


def default_batch(device: torch.device) -> int:
    return CPU_BATCH if device.type == "cpu" else BATCH


def superpixels(pixels: np.ndarray, num_segments: int) -> tuple[np.ndarray, str]:
    """SLIC segments of uint8 (H, W, 3) pixels, numbered 0..K-1 (K can differ from num_segments), and
    a note when NNC's settings gave too few and smoother ones were used (empty otherwise)."""
    best, note = None, ""
    for compactness, sigma in SLIC_SETTINGS:
        labels = slic(pixels, n_segments=num_segments, compactness=compactness, sigma=sigma, start_label=0)
        _, dense = np.unique(labels, return_inverse=True)  # consecutive ids, as captum's mask needs
        dense = dense.reshape(labels.shape)
        if best is None or dense.max() > best.max():
            best = dense
            if (compactness, sigma) != SLIC_SETTINGS[0]:
                note = f"SLIC compactness {compactness:g}, sigma {sigma:g}"
        if best.max() + 1 >= max(2, num_segments // 2):
            break
    return best, note


def lime_weights(classifier: ImageClassifier, unit: torch.Tensor, segments: np.ndarray, class_index: int,
                 num_samples: int, batch_size: int | None = None, seed: int = 0, reporter: Reporter | None = None,
                 on_samples=None, reuse: bool = True) -> np.ndarray:
    """One weight per segment for `class_index`; `unit` is (3, S, S) in [0, 1]. `on_samples(done)` is
    called after each forward pass (progress); the job's stop request is checked there too. `batch_size`
    None: `default_batch` of the classifier's device. `reuse` False: every sample through the model
    (NNC's way, for benchmarks)."""
    model = classifier.pixel_model()
    batch_size = default_batch(classifier.device) if batch_size is None else batch_size
    done = [0]
    # K segments give at most 2^K masks, and 1,000 draws of 10 segments repeat about 360 of them: each
    # mask goes through the model once (captum's Lime still sees one output per sample, the same as
    # without the cache). `drawn` holds the masks of the samples captum has not evaluated yet, in order.
    drawn: list[bytes] = []
    scored: dict[bytes, torch.Tensor] = {}

    def score(pixels: torch.Tensor) -> torch.Tensor:
        outputs = model(pixels)
        # a single output (an anomaly model's score) is explained as it is: its softmax is always 1
        return torch.softmax(outputs, dim=1) if outputs.shape[1] > 1 else outputs

    def forward(pixels: torch.Tensor) -> torch.Tensor:
        if reporter is not None:
            check_stop(reporter)
        keys = drawn[:len(pixels)]
        del drawn[:len(pixels)]
        if reuse:
            new = {key: row for row, key in enumerate(keys) if key not in scored}  # first row of each new mask
            if new:
                scored.update(zip(new, score(pixels[list(new.values())]).detach(), strict=True))
            result = torch.stack([scored[key] for key in keys])
        else:
            result = score(pixels)
        done[0] += len(pixels)
        if on_samples is not None:
            on_samples(done[0])
        return result

    generator = torch.Generator().manual_seed(seed)

    def perturb(_inputs, **kwargs) -> torch.Tensor:
        keep = torch.rand(1, kwargs["num_interp_features"], generator=generator) < 0.5
        drawn.append(keep.numpy().tobytes())
        return keep.long().to(classifier.device)

    lime = Lime(forward, interpretable_model=SkLearnRidge(alpha=1.0), similarity_func=lambda *a, **k: 1.0,
                perturb_func=perturb)
    inputs = unit.unsqueeze(0).to(classifier.device)
    mask = torch.from_numpy(segments).long().to(classifier.device).view(1, 1, *segments.shape)
    weights = lime.attribute(inputs, target=class_index, baselines=0.0, feature_mask=mask, n_samples=num_samples,
                             perturbations_per_eval=max(1, batch_size), return_input_shape=False)
    return weights.detach().flatten().cpu().numpy().astype(np.float64)


def top_segments(weights: np.ndarray, count: int) -> list[int]:
    """The `count` segments with the largest (signed) weights, largest first."""
    order = np.argsort(-weights, kind="stable")
    return [int(i) for i in order[:count]]
