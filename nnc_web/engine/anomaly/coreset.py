"""Greedy k-center coreset selection and chunked nearest-neighbour search (PatchCore's two hot loops).

The coreset runs on a random Gaussian projection (64 dims; the official PatchCore code uses 128, but
at 40k patches 64 dims fit in cache: 3x faster, the same mean nearest-neighbour distance, and the
AUROC of anomalib's coreset in benchmarks/anomaly_vs_anomalib.py) and
keeps, for every point, its squared distance to the nearest chosen centre. Each step is one
matrix-vector product (|x|^2 - 2 x.c + |c|^2) and an in-place minimum: no (M, D) difference
tensor is allocated per step, which is where anomalib's loop spends its time.
"""
from __future__ import annotations

import torch

from nnc_web.engine.reporting import Reporter, check_stop

PROJECTION_DIM = 64  # 40k patches x 64 floats stay in cache: 3x faster than 128, same mean NN distance
QUERY_CHUNK_ELEMENTS = 1 << 24  # queries x bank items per distance block (64 MB in float32)


def random_projection(features: torch.Tensor, dim: int, seed: int) -> torch.Tensor:
    if features.shape[1] <= dim:
        return features
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(features.shape[1], dim, generator=generator) / dim ** 0.5
    return features @ matrix.to(features.device, features.dtype)


def greedy_coreset(features: torch.Tensor, size: int, seed: int = 0, reporter: Reporter | None = None,
                   projection_dim: int = PROJECTION_DIM, report_every: int = 256) -> torch.Tensor:
    """Indices of `size` rows chosen by farthest-point (k-center) selection, the random start first."""
    total = features.shape[0]
    size = max(1, min(size, total))
    points = random_projection(features.float(), projection_dim, seed)
    norms = (points * points).sum(1)
    start = int(torch.randint(total, (1,), generator=torch.Generator().manual_seed(seed)))
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = start
    nearest = (torch.addmv(norms, points, points[start], alpha=-2.0) + norms[start]).clamp_min_(0)
    for step in range(1, size):
        index = int(torch.argmax(nearest))
        chosen[step] = index
        distance = torch.addmv(norms, points, points[index], alpha=-2.0).add_(norms[index])
        torch.minimum(nearest, distance, out=nearest)
        if reporter is not None and step % report_every == 0:
            check_stop(reporter)
            reporter.progress(step, size)
    if reporter is not None:
        reporter.progress(size, size)
    return chosen


def nearest_neighbours(queries: torch.Tensor, bank: torch.Tensor, bank_norms: torch.Tensor | None = None,
                       k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances and indices of the k nearest bank rows of each query, in query chunks."""
    if bank_norms is None:
        bank_norms = (bank * bank).sum(1)
    k = min(k, bank.shape[0])
    chunk = max(1, QUERY_CHUNK_ELEMENTS // max(1, bank.shape[0]))
    distances, indices = [], []
    for start in range(0, queries.shape[0], chunk):
        block = queries[start:start + chunk]
        squared = torch.addmm(bank_norms[None, :], block, bank.T, alpha=-2.0).add_((block * block).sum(1)[:, None])
        values, where = torch.topk(squared, k, dim=1, largest=False)
        distances.append(values.clamp_min_(0).sqrt_())
        indices.append(where)
    return torch.cat(distances), torch.cat(indices)
