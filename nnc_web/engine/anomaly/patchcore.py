"""PatchCore: Towards Total Recall in Industrial Anomaly Detection (Roth et al., CVPR 2022,
arXiv 2106.08265).

Locally aware patch features: the stride-8 and stride-16 layers each averaged over a 3 x 3
neighbourhood, the deeper one bilinearly upsampled, concatenated, the kept channels (`auto`: all of
them up to the paper's 1024; on the texture benchmark all 152 of Lite0's beat NNC's 0.25). Every patch of
every normal image goes into one preallocated bank; a greedy k-center coreset of
`sample_ratio` of it is the memory bank. A patch's score is its distance to the nearest bank item;
the image score is the paper's re-weighted maximum (num_neighbors = 9, as anomalib).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from nnc_web.engine.anomaly.coreset import greedy_coreset, nearest_neighbours
from nnc_web.engine.anomaly.model import AnomalyModel, check_memory
from nnc_web.engine.reporting import Reporter, UserError, check_stop

NUM_NEIGHBORS = 9
PAPER_DIMS = 1024  # the paper's target embedding dimension: at most this many channels with `auto`


class Patchcore(AnomalyModel):
    method = "patchcore"
    title = "PatchCore"
    layer_slice = slice(1, 3)
    auto_dims = PAPER_DIMS
    auto_note = f"every channel, up to the paper's {PAPER_DIMS}"

    def __init__(self, backbone_id: str, sample_ratio: float = 0.01, **kwargs) -> None:
        if not 0 < sample_ratio <= 1:
            raise UserError("sample_ratio must be above 0 and at most 1")
        self.sample_ratio = sample_ratio
        super().__init__(backbone_id, **kwargs)
        self.height, self.width = self.grids[0]
        self.memory_bank: torch.Tensor | None = None
        self._bank_norms: torch.Tensor | None = None

    def settings(self) -> dict:
        size = 0 if self.memory_bank is None else int(self.memory_bank.shape[0])
        return {**super().settings(), "sample_ratio": self.sample_ratio, "memory_bank": size,
                "grid": [self.height, self.width], "num_neighbors": NUM_NEIGHBORS}

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) locally aware patch features."""
        first, *rest = [F.avg_pool2d(f, 3, stride=1, padding=1) for f in self.selected_layers(images)]
        grid = first.shape[2:]
        return torch.cat([first, *[F.interpolate(f, size=grid, mode="bilinear", align_corners=False)
                                   for f in rest]], dim=1)

    def fit(self, paths: Sequence[Path], reporter: Reporter, batch_size: int = 16) -> None:
        per_image = self.height * self.width
        total = len(paths) * per_image
        size = max(1, int(total * self.sample_ratio))
        check_memory(total * self.dim * 4 * 2, f"PatchCore's {total} training patches of {self.dim} channels",
                     "use fewer training images or a smaller feature_ratio", self.device)
        reporter.log(self.channel_line())
        reporter.log(f"PatchCore: {total} patches of {self.dim} dimensions ({total * self.dim * 4 / 1e6:.1f} MB), "
                     f"coreset of {size} ({self.sample_ratio:g})")
        patches = torch.empty(total, self.dim, dtype=torch.float32, device=self.device)
        reporter.progress(0, len(paths))
        for start, batch in self.training_batches(paths, batch_size):
            check_stop(reporter)
            embedding = self.embed(batch)
            patches[start * per_image:(start + len(batch)) * per_image] = embedding.permute(0, 2, 3, 1).reshape(
                -1, self.dim)
            reporter.progress(start + len(batch), len(paths))
        reporter.log(f"greedy k-center coreset: {size} of {total} patches")
        chosen = greedy_coreset(patches, size, self.seed, reporter)
        self.set_bank(patches[chosen.to(patches.device)].clone())
        del patches

    def set_bank(self, bank: torch.Tensor) -> None:
        self.memory_bank = bank.float().to(self.device).contiguous()
        self._bank_norms = (self.memory_bank * self.memory_bank).sum(1)
        self.fitted = True

    def score_batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.memory_bank is not None
        embedding = self.embed(images)
        batch = embedding.shape[0]
        patches = embedding.permute(0, 2, 3, 1).reshape(batch, -1, self.dim)
        distances, nearest = nearest_neighbours(patches.reshape(-1, self.dim), self.memory_bank, self._bank_norms)
        patch_scores = distances[:, 0].reshape(batch, -1)
        nearest = nearest[:, 0].reshape(batch, -1)
        scores = self.reweighted(patch_scores, nearest, patches)
        return scores, self.blurred(patch_scores.reshape(batch, self.height, self.width))

    def reweighted(self, patch_scores: torch.Tensor, nearest: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """s = (1 - softmax(distances of the worst patch to its bank item's neighbourhood)[0]) * s*."""
        assert self.memory_bank is not None
        rows = torch.arange(patch_scores.shape[0], device=patch_scores.device)
        worst = patch_scores.argmax(1)
        top = patch_scores[rows, worst]
        worst_features = patches[rows, worst]
        bank_item = self.memory_bank[nearest[rows, worst]]
        _, support = nearest_neighbours(bank_item, self.memory_bank, self._bank_norms, k=NUM_NEIGHBORS)
        if support.shape[1] == 1:  # a one-item bank has no neighbourhood to weigh against
            return top
        distances = torch.linalg.vector_norm(worst_features[:, None, :] - self.memory_bank[support], dim=2)
        weights = 1 - torch.softmax(distances, dim=1)[:, 0]
        return weights * top

    def state(self) -> dict[str, torch.Tensor]:
        assert self.memory_bank is not None
        return {"memory_bank": self.memory_bank, "channels": self.channels}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        if state["memory_bank"].ndim != 2 or state["memory_bank"].shape[1] != self.dim:
            raise UserError("the saved PatchCore memory bank does not match its settings")
        self.set_bank(state["memory_bank"])
