"""Greedy k-center coreset selection and chunked nearest-neighbour search (PatchCore's two hot loops).

Up to EXACT_DIMS channels (Lite0's 152) the coreset is chosen on the features themselves; wider ones
go onto their 64 leading principal axes (the official PatchCore code uses a 128-d random projection,
anomalib a sparse one to the Johnson-Lindenstrauss size). Before 2026-12-03 every width went onto a
random 64-d Gaussian projection, which distorts each distance by about 9 % (one standard deviation;
the principal axes of Lite0's patches about 1 %). At sample_ratio 0.1, where the greedy loop ranks
many almost-equal distances, that decided which of the hard case's faint defects had a close bank
item: benchmarks/anomaly_vs_anomalib.py's pixel AUROC 0.808 (Gaussian 64-d) / 0.844 (principal 64-d) /
0.855 (exact) against anomalib's 0.848, at a coreset 1.2x slower than the 64-d one. The loop keeps,
for every point, its squared distance to the nearest chosen centre. Each step is one matrix-vector
product (|x|^2 - 2 x.c + |c|^2) and an in-place minimum: no (M, D) difference tensor is allocated per
step, which is where anomalib's loop spends its time.
"""
from __future__ import annotations

import torch

from nnc_web.engine.reporting import Reporter, check_stop

EXACT_DIMS = 256  # up to this many channels no projection: the exact loop costs ~1.2x the 64-d one at 152
PROJECTION_DIM = 64  # wider features: their leading principal axes (40k patches x 64 floats stay in cache)
PCA_ROWS = 20_000  # rows the principal components are estimated from (a seeded sample of larger sets)
QUERY_CHUNK_ELEMENTS = 1 << 24  # queries x bank items per distance block (64 MB in float32)


def random_projection(features: torch.Tensor, dim: int, seed: int) -> torch.Tensor:
    """A Gaussian N(0, 1/dim) projection (the coreset's before 2026-12-03; kept for comparisons)."""
    if features.shape[1] <= dim:
        return features
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(features.shape[1], dim, generator=generator) / dim ** 0.5
    return features @ matrix.to(features.device, features.dtype)


def principal_projection(features: torch.Tensor, dim: int, seed: int, max_rows: int = PCA_ROWS) -> torch.Tensor:
    """The features on their `dim` leading principal axes (estimated from at most `max_rows` rows):
    the rank-`dim` projection that keeps the most of every squared distance."""
    if features.shape[1] <= dim:
        return features
    sample = features
    if len(features) > max_rows:
        rows = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))[:max_rows]
        sample = features[rows.to(features.device)]
    sample = sample.double()
    mean = sample.mean(0)
    _, vectors = torch.linalg.eigh((sample - mean).T @ (sample - mean))  # ascending: the last lead
    basis = vectors[:, -dim:].to(features.dtype)
    # centred (distances stay the same): smaller norms, less float32 cancellation in |x|^2 - 2 x.c + |c|^2
    return features @ basis - (mean.to(features.dtype) @ basis)


def greedy_coreset(features: torch.Tensor, size: int, seed: int = 0, reporter: Reporter | None = None,
                   projection_dim: int | None = None, report_every: int = 256) -> torch.Tensor:
    """Indices of `size` rows chosen by farthest-point (k-center) selection, the random start first.
    `projection_dim` None: the features themselves up to EXACT_DIMS channels, else PROJECTION_DIM
    principal axes; a number: that many principal axes (if the features are wider)."""
    total = features.shape[0]
    size = max(1, min(size, total))
    if projection_dim is None:
        projection_dim = features.shape[1] if features.shape[1] <= EXACT_DIMS else PROJECTION_DIM
    points = principal_projection(features.float(), projection_dim, seed)
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
