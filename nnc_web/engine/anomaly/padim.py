"""PaDiM: a Patch Distribution Modeling Framework for Anomaly Detection and Localization
(Defard et al., 2020, arXiv 2011.08785).

Embedding = the three model-store layers (strides 4, 8, 16), the deeper ones nearest-upsampled to
the first one's grid, concatenated, then the kept channels. Normal images are modelled by Gaussians
whose granularity is `gaussian` (the meanings of NNC's plugin):
  dense   one Gaussian per position of the finest grid (the paper; 56 x 56 = 3136 at 224 px),
  1/16    one per position of the coarsest grid (each over a 4 x 4 block of the finest: 16x fewer),
  single  one for the image's interior, one for its border ring (the positions within `border`
          cells of the edge) less its corners, and one for the four `border` x `border` corners: the
          backbone's zero padding makes border features unlike interior ones (and corners, padded on
          two sides, unlike edges), so one Gaussian for all flags every image's border (issue 15);
          bundles saved before the corners (2 Gaussians: interior, whole ring) or before the ring (1)
          still load and score as they did.
`feature_ratio` `auto` keeps the paper's 100 dimensions (never more than the backbone has). Means and
scatter matrices are accumulated online in float32 by pairwise (Chan et al.) updates, straight into
the buffer that becomes the model: no list of embeddings and no second model-sized buffer, so a fit
needs the model's size plus one batch whatever the number of images. Each covariance is regularised
with 0.01 I and inverted in float64 (batched Cholesky), chunk by chunk in place. The anomaly map is the
Mahalanobis distance per position (not divided by D as NNC's dense mode does: AUROC is the same and
the three modes then share one scale), bilinearly upsampled and blurred; the image score is its max.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from nnc_web.engine.anomaly.features import kept_counts
from nnc_web.engine.anomaly.model import AnomalyModel, check_memory, memory_budget
from nnc_web.engine.anomaly.options import GAUSSIAN_MODES
from nnc_web.engine.reporting import Reporter, UserError, check_stop

EPSILON = 0.01  # the paper's covariance regulariser
INVERT_CHUNK_ELEMENTS = 1 << 21  # covariance entries inverted at a time (16 MB of float64)
ACCUMULATE_CHUNK_ELEMENTS = 1 << 22  # centred batch vectors per update chunk (16 MB)
PAPER_DIMS = 100  # the paper's Rd100 (ResNet-18: 100 of 448 channels)
BORDER_CELLS = 4  # single mode's ring, in cells of the finest grid (4 = one stride-16 cell)


class Padim(AnomalyModel):
    method = "padim"
    title = "PaDiM"
    auto_dims = PAPER_DIMS
    auto_note = f"the paper's {PAPER_DIMS}"

    def __init__(self, backbone_id: str, gaussian: str = "dense", border: int = BORDER_CELLS, corners: bool = True,
                 **kwargs) -> None:
        if gaussian not in GAUSSIAN_MODES:
            raise UserError(f"gaussian must be one of {', '.join(GAUSSIAN_MODES)}")
        self.gaussian = gaussian
        super().__init__(backbone_id, **kwargs)
        (self.height, self.width), coarse = self.grids[0], self.grids[-1]
        self.block = self.height // coarse[0]
        # the ring only in single mode, and only where an interior is left
        self.border = border if gaussian == "single" and 2 * border < min(self.height, self.width) else 0
        self.corners = corners and bool(self.border)  # the ring's corners pooled in a Gaussian of their own
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
        return 1 + bool(self.border) + self.corners

    def regions(self) -> list[torch.Tensor]:
        """Single mode's flat position indices per Gaussian: [all], [interior, border ring] (older
        bundles) or [interior, ring less its corners, the four corners]."""
        h, w, k = self.height, self.width, self.border
        if not k:
            return [torch.arange(h * w, device=self.device)]
        label = torch.ones(h, w, dtype=torch.long, device=self.device)
        label[k:h - k, k:w - k] = 0
        if self.corners:
            for rows in (slice(0, k), slice(h - k, h)):
                for cols in (slice(0, k), slice(w - k, w)):
                    label[rows, cols] = 2
        label = label.flatten()
        return [(label == g).nonzero().flatten() for g in range(self.gaussians)]

    def settings(self) -> dict:
        return {**super().settings(), "gaussian": self.gaussian, "gaussians": self.gaussians,
                "border": self.border, "corners": self.corners, "grid": [self.height, self.width]}

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        first, *rest = self.selected_layers(images)
        grid = first.shape[2:]
        return torch.cat([first, *[F.interpolate(f, size=grid, mode="nearest") for f in rest]], dim=1)

    def group(self, embedding: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) -> (G, M, D), contiguous: the vectors each Gaussian models, M per group for this
        batch (a permuted view would send every batched product below down a path ~100x slower)."""
        b, d, h, w = embedding.shape
        if self.gaussian == "dense":
            return embedding.flatten(2).permute(2, 0, 1).contiguous()
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

    def memory_plan(self, dims: int | None = None, batch_size: int = 16) -> dict[str, int]:
        """Bytes a fit needs at `dims` dimensions: the statistics (accumulated in place into the float32
        model, so they are the model) and the working memory of one batch and one inversion chunk."""
        g, d = self.gaussians, dims or self.dim
        batch = 3 * batch_size * d * self.height * self.width * 4  # embedding, its grouping, centred copy
        inversion = 3 * min(g, max(1, INVERT_CHUNK_ELEMENTS // (d * d))) * d * d * 8  # float64 temporaries
        return {"statistics": g * d * (d + 1) * 4, "working": batch + inversion}

    def largest_fitting_dims(self, budget: int, batch_size: int) -> int:
        """The most dimensions (at most the current ones) whose fit stays within `budget` bytes; 0: none."""
        low, high = 0, self.dim
        while low < high:
            middle = (low + high + 1) // 2
            if sum(self.memory_plan(middle, batch_size).values()) <= budget:
                low = middle
            else:
                high = middle - 1
        return low

    def memory_advice(self, batch_size: int) -> str:
        """What would fit: fewer dimensions (as a feature_ratio too), a coarser gaussian mode."""
        advice = []
        dims = self.largest_fitting_dims(memory_budget(self.device), batch_size)
        ratio = math.floor(dims / sum(self.layer_channels) * 100) / 100
        while ratio >= 0.01 and sum(kept_counts(self.layer_channels, ratio, None)) > dims:
            ratio = round(ratio - 0.01, 2)
        if dims:
            advice.append(f"keep at most {dims} dimensions" + (f" (feature_ratio {ratio:g})" if ratio >= 0.01 else ""))
        if self.gaussian == "dense":
            advice.append("choose gaussian 1/16 (16x smaller) or single")
        elif self.gaussian == "1/16":
            advice.append("choose gaussian single")
        return ", or ".join(advice) or "use a smaller input_size"

    def fit(self, paths: Sequence[Path], reporter: Reporter, batch_size: int = 16) -> None:
        plan = self.memory_plan(batch_size=batch_size)
        check_memory(sum(plan.values()), f"PaDiM ({self.gaussian}, {self.dim} dimensions)",
                     self.memory_advice(batch_size), self.device)
        reporter.log(self.channel_line())
        reporter.log(f"PaDiM {self.gaussian}: {self.gaussians} Gaussian(s) of {self.dim} dimensions over a "
                     f"{self.height}x{self.width} grid; statistics {plan['statistics'] / 1e6:.1f} MB (float32, "
                     f"accumulated in place into the model, no embeddings kept) + "
                     f"{plan['working'] / 1e6:.1f} MB working memory")
        reporter.progress(0, len(paths))

        def embeddings():
            for start, batch in self.training_batches(paths, batch_size):
                check_stop(reporter)
                yield self.embed(batch)
                reporter.progress(start + len(batch), len(paths))

        counts = self.fit_embeddings(embeddings(), lambda: check_stop(reporter))
        per = "/".join(map(str, counts)) if self.gaussian == "single" else str(counts[0])  # dense: 3136 equal
        reporter.log(f"fitted {self.gaussians} Gaussian(s) on {per} vectors per Gaussian from {len(paths)} images")

    def fit_embeddings(self, embeddings: Iterable[torch.Tensor], check: Callable[[], None] = lambda: None
                       ) -> list[int]:
        """Fit from (B, D, H, W) embeddings (what `fit` does after the backbone; also the benchmarks'
        cached features). Returns the number of vectors behind each Gaussian."""
        mean = torch.zeros(self.gaussians, self.dim, device=self.device)
        scatter = torch.zeros(self.gaussians, self.dim, self.dim, device=self.device)  # becomes cov_inv
        counts = [0] * self.gaussians
        for embedding in embeddings:
            if self.gaussian == "single":  # one group per region, each with its own count
                flat = embedding.permute(0, 2, 3, 1).reshape(len(embedding), -1, self.dim)
                for g, positions in enumerate(self.regions()):
                    counts[g] = merge_batch(mean[g:g + 1], scatter[g:g + 1], counts[g],
                                            flat[:, positions].reshape(1, -1, self.dim))
            else:
                counts = [merge_batch(mean, scatter, counts[0], self.group(embedding))] * self.gaussians
        identity = EPSILON * torch.eye(self.dim, dtype=torch.float64, device=self.device)
        divisors = torch.tensor(counts, dtype=torch.float64, device=self.device) - 1
        step = max(1, INVERT_CHUNK_ELEMENTS // (self.dim * self.dim))
        for first in range(0, self.gaussians, step):  # in place, in chunks: no second model-sized buffer
            check()
            part = scatter[first:first + step]
            part.copy_(invert_spd(part.double() / divisors[first:first + step, None, None] + identity))
        self.mean, self.cov_inv = mean, scatter
        self.fitted = True
        return counts

    def score_batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.score_embedding(self.embed(images))

    def score_embedding(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image scores and blurred maps of (B, D, H, W) embeddings."""
        assert self.mean is not None and self.cov_inv is not None
        if self.gaussian == "single":
            flat = embedding.permute(0, 2, 3, 1).reshape(len(embedding), -1, self.dim)
            squared = flat.new_empty(flat.shape[:2])
            for g, positions in enumerate(self.regions()):
                delta = flat[:, positions] - self.mean[g]
                squared[:, positions] = ((delta @ self.cov_inv[g]) * delta).sum(-1)
            patch = squared.reshape(len(embedding), self.height, self.width)
        else:
            delta = self.group(embedding) - self.mean[:, None, :]
            patch = self.ungroup(((delta @ self.cov_inv) * delta).sum(-1), len(embedding))
        maps = self.blurred(patch.clamp_min(0).sqrt())
        return maps.flatten(1).amax(1), maps

    def state(self) -> dict[str, torch.Tensor]:
        assert self.mean is not None and self.cov_inv is not None
        return {"mean": self.mean, "cov_inv": self.cov_inv, "channels": self.channels}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        if self.gaussian == "single" and len(state["mean"]) < self.gaussians:
            self.corners = False  # saved before the corners' Gaussian: interior and whole ring
            if len(state["mean"]) == 1:
                self.border = 0  # saved before the border ring: one Gaussian for every position
        expected = (self.gaussians, self.dim)
        if tuple(state["mean"].shape) != expected or tuple(state["cov_inv"].shape) != (*expected, self.dim):
            raise UserError("the saved PaDiM statistics do not match its settings")
        self.mean = state["mean"].float().to(self.device)
        self.cov_inv = state["cov_inv"].float().to(self.device)
        self.fitted = True


def merge_batch(mean: torch.Tensor, scatter: torch.Tensor, count: int, vectors: torch.Tensor) -> int:
    """Add a batch of vectors (G, M, D) to running means (G, D) and scatter matrices (G, D, D) of
    `count` vectors each, in place (Chan et al.'s pairwise update): the batch's own centred products
    plus the outer product of the shift between the two means. Every term is positive
    semi-definite, so nothing cancels and float32 gives what float64 does. Returns the new count."""
    m = vectors.shape[1]
    total = count + m
    batch_mean = vectors.mean(dim=1)
    delta = batch_mean - mean
    step = max(1, ACCUMULATE_CHUNK_ELEMENTS // (m * vectors.shape[2]))
    for first in range(0, len(scatter), step):  # in group chunks: no batch-sized temporary
        part = slice(first, first + step)
        centred = vectors[part] - batch_mean[part, None, :]
        scatter[part].baddbmm_(centred.transpose(1, 2), centred)
        if count:
            scatter[part].baddbmm_(delta[part, :, None], delta[part, None, :], alpha=count * m / total)
    mean.add_(delta, alpha=m / total)
    return total


def invert_spd(matrices: torch.Tensor) -> torch.Tensor:
    """Batched inverse of symmetric positive-definite matrices (Cholesky; pseudo-inverse fallback)."""
    factor, info = torch.linalg.cholesky_ex(matrices)
    if bool((info == 0).all()):
        return torch.cholesky_inverse(factor)
    return torch.linalg.pinv(matrices, hermitian=True)
