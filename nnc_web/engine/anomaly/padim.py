"""PaDiM: a Patch Distribution Modeling Framework for Anomaly Detection and Localization
(Defard et al., 2020, arXiv 2011.08785).

Embedding = the three model-store layers (strides 4, 8, 16), the deeper ones nearest-upsampled to
the first one's grid, concatenated, then the kept channels. Normal images are modelled by Gaussians
whose granularity is `gaussian` (the meanings of NNC's plugin):
  dense   one Gaussian per position of the finest grid (the paper; 56 x 56 = 3136 at 224 px),
  1/16    one per position of the coarsest grid (each over a 4 x 4 block of the finest: 16x fewer),
  single  one for the whole image.
Means and covariances are accumulated online in float64 (shifted sums, no list of embeddings; each
batch's products in float32, which is exact enough for centred vectors and twice as fast), the
covariance is regularised with 0.01 I and inverted batched through Cholesky. The anomaly map is the
Mahalanobis distance per position (not divided by D as NNC's dense mode does: AUROC is the same and
the three modes then share one scale), bilinearly upsampled and blurred; the image score is its max.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from nnc_web.engine.anomaly.model import AnomalyModel, check_memory
from nnc_web.engine.reporting import Reporter, UserError, check_stop

GAUSSIAN_MODES = ("dense", "1/16", "single")
EPSILON = 0.01  # the paper's covariance regulariser
INVERT_CHUNK_ELEMENTS = 1 << 22  # covariance entries inverted at a time (32 MB of float64)
ACCUMULATE_CHUNK_ELEMENTS = 1 << 22  # covariance entries updated at a time


class Padim(AnomalyModel):
    method = "padim"

    def __init__(self, backbone_id: str, gaussian: str = "dense", **kwargs) -> None:
        if gaussian not in GAUSSIAN_MODES:
            raise UserError(f"gaussian must be one of {', '.join(GAUSSIAN_MODES)}")
        self.gaussian = gaussian
        super().__init__(backbone_id, **kwargs)
        (self.height, self.width), coarse = self.grids[0], self.grids[-1]
        self.block = self.height // coarse[0]
        if gaussian == "1/16" and (self.height % self.block or self.width % self.block):
            raise UserError("the 1/16 mode needs an input_size that is a multiple of 32")
        self.mean: torch.Tensor | None = None
        self.cov_inv: torch.Tensor | None = None

    @property
    def gaussians(self) -> int:
        if self.gaussian == "dense":
            return self.height * self.width
        if self.gaussian == "1/16":
            return (self.height // self.block) * (self.width // self.block)
        return 1

    def settings(self) -> dict:
        return {**super().settings(), "gaussian": self.gaussian, "gaussians": self.gaussians,
                "grid": [self.height, self.width]}

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        first, *rest = self.selected_layers(images)
        grid = first.shape[2:]
        return torch.cat([first, *[F.interpolate(f, size=grid, mode="nearest") for f in rest]], dim=1)

    def group(self, embedding: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) -> (G, M, D): the vectors each Gaussian models, M per group for this batch."""
        b, d, h, w = embedding.shape
        if self.gaussian == "dense":
            return embedding.flatten(2).permute(2, 0, 1)
        if self.gaussian == "single":
            return embedding.permute(0, 2, 3, 1).reshape(1, b * h * w, d)
        k = self.block
        blocks = embedding.reshape(b, d, h // k, k, w // k, k).permute(2, 4, 0, 3, 5, 1)
        return blocks.reshape((h // k) * (w // k), b * k * k, d)

    def ungroup(self, values: torch.Tensor, batch: int) -> torch.Tensor:
        """(G, M) per-vector values -> (B, H, W), the inverse of `group`."""
        h, w = self.height, self.width
        if self.gaussian == "dense":
            return values.permute(1, 0).reshape(batch, h, w)
        if self.gaussian == "single":
            return values.reshape(batch, h, w)
        k = self.block
        blocks = values.reshape(h // k, w // k, batch, k, k).permute(2, 0, 3, 1, 4)
        return blocks.reshape(batch, h, w)

    def memory_plan(self) -> dict[str, int]:
        g, d = self.gaussians, self.dim
        return {"accumulators": g * d * (d + 2) * 8, "model": g * d * (d + 1) * 4}

    def fit(self, paths: Sequence[Path], reporter: Reporter, batch_size: int = 16) -> None:
        plan = self.memory_plan()
        check_memory(plan["accumulators"] + plan["model"], f"PaDiM ({self.gaussian}, {self.dim} channels)",
                     "choose gaussian 1/16 or single, or a smaller feature_ratio")
        reporter.log(f"PaDiM {self.gaussian}: {self.gaussians} Gaussian(s) of {self.dim} dimensions over a "
                     f"{self.height}x{self.width} grid; accumulators {plan['accumulators'] / 1e6:.1f} MB (float64), "
                     f"model {plan['model'] / 1e6:.1f} MB")
        shift = total = outer = None
        count = 0
        reporter.progress(0, len(paths))
        for start, batch in self.training_batches(paths, batch_size):
            check_stop(reporter)
            vectors = self.group(self.embed(batch))
            if shift is None:  # shifted sums keep the covariance exact for features with large means
                shift = vectors.double().mean(dim=1, keepdim=True)
                total = torch.zeros_like(shift[:, 0])
                outer = torch.zeros(vectors.shape[0], vectors.shape[2], vectors.shape[2], dtype=torch.float64,
                                    device=vectors.device)
            centred = (vectors - shift.float()).contiguous()
            total += centred.sum(dim=1, dtype=torch.float64)
            # One batch's products in float32 (centred, so nothing cancels), summed over batches in
            # float64; in group chunks, so no batch-sized float64 temporary is ever allocated.
            step = max(1, ACCUMULATE_CHUNK_ELEMENTS // (self.dim * self.dim))
            for first in range(0, outer.shape[0], step):
                part = centred[first:first + step]
                outer[first:first + step] += torch.bmm(part.transpose(1, 2), part)
            count += vectors.shape[1]
            reporter.progress(start + len(batch), len(paths))
        assert shift is not None and total is not None and outer is not None
        self.mean = (shift[:, 0] + total / count).float().contiguous()
        self.cov_inv = torch.empty(outer.shape, dtype=torch.float32, device=outer.device)
        identity = EPSILON * torch.eye(self.dim, dtype=torch.float64, device=outer.device)
        step = max(1, INVERT_CHUNK_ELEMENTS // (self.dim * self.dim))
        for first in range(0, self.gaussians, step):  # in chunks: peak memory stays accumulators + model
            check_stop(reporter)
            part = slice(first, first + step)
            block = outer[part] - total[part, :, None] * total[part, None, :] / count
            self.cov_inv[part] = invert_spd(block / (count - 1) + identity).float()
        self.fitted = True
        reporter.log(f"fitted {self.gaussians} Gaussian(s) on {count} vectors per Gaussian "
                     f"from {len(paths)} images")

    def score_batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.mean is not None and self.cov_inv is not None
        vectors = self.group(self.embed(images))
        delta = vectors - self.mean[:, None, :]
        squared = ((delta @ self.cov_inv) * delta).sum(-1)
        patch = self.ungroup(squared.clamp_min(0).sqrt(), len(images))
        maps = self.blurred(patch)
        return maps.flatten(1).amax(1), maps

    def state(self) -> dict[str, torch.Tensor]:
        assert self.mean is not None and self.cov_inv is not None
        return {"mean": self.mean, "cov_inv": self.cov_inv, "channels": self.channels}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        expected = (self.gaussians, self.dim)
        if tuple(state["mean"].shape) != expected or tuple(state["cov_inv"].shape) != (*expected, self.dim):
            raise UserError("the saved PaDiM statistics do not match its settings")
        self.mean = state["mean"].float().to(self.device)
        self.cov_inv = state["cov_inv"].float().to(self.device)
        self.fitted = True


def invert_spd(matrices: torch.Tensor) -> torch.Tensor:
    """Batched inverse of symmetric positive-definite matrices (Cholesky; pseudo-inverse fallback)."""
    factor, info = torch.linalg.cholesky_ex(matrices)
    if bool((info == 0).all()):
        return torch.cholesky_inverse(factor)
    return torch.linalg.pinv(matrices, hermitian=True)
