"""How much of the hard case's AUROC is the luck of a random draw (issue 15's diagnosis).

The features of ours and anomalib's are the same tensors (checked: max |difference| 0.0 on the
PatchCore embedding), and so are the scoring rules, so what differs between two runs is only
- PaDiM: which 100 of the 176 channels are drawn (ours: per layer in proportion, seeded; anomalib:
  `random.sample` over all of them, `uniform` here),
- PatchCore: the coreset's random start and projection.
This script extracts the hard case's features once (cached in a folder), then refits from the cache
under several draws and prints image/pixel AUROC per draw; `edge` also reports where the image score
(the map's max) lies: within 24 px of the border, where the backbone's zero padding makes every image
look anomalous to a single Gaussian.

    nice -n 10 .venv/bin/python benchmarks/anomaly_draws.py CACHE padim dense,1/16,single 0,1,2 [uniform] [edge] [border=0 border=4 ...] [layout=ring layout=corners ...]
    nice -n 10 .venv/bin/python benchmarks/anomaly_draws.py CACHE patchcore 0.01 0,1,2 [default|64|152] [gauss=64 sparse=282 none random ...]

`default` (what no variant means) is greedy_coreset's own choice (since 2026-12-03: the exact features up
to 256 channels, so for Lite0's 152; wider ones on 64 principal axes); a bare number `N` is N principal axes.
PatchCore's `KIND=DIM` variants pick the coreset on another projection: `pca` (N principal axes, as `N`),
`gauss` (ours before 2026-12-03: N(0, 1/d); `gauss=64` is the old default),
`sparse` (anomalib's: Li et al.'s very sparse +-sqrt(s/d) entries with density 1/sqrt(D), `sparse=jl`
for its Johnson-Lindenstrauss size at eps 0.9), `none` (exact distances), `none64` (float64), `random` (a uniform
random subsample, no k-center), `meanstart` / `farstart` (our projection, the start nearest to /
farthest from the mean) and `nostart` (anomalib's pre-gh-3459 loop: the random start is only a
virtual centre and not kept); under .venv-bench, `anomalib` runs anomalib's KCenterGreedy itself and
`anomalibproj` our k-center loop on anomalib's SparseRandomProjection (both seeded through the global RNGs),
`anomalibstart` (`anomalibstart=exact`) our loop (with anomalib's exact |x - c|) from anomalib's start too,
and `ascore` scores each memory bank with anomalib's PatchcoreModel too.
"""
from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from nnc_web.engine.anomaly.coreset import greedy_coreset, nearest_neighbours  # noqa: E402
from nnc_web.engine.anomaly.features import flatten_selection, select_channels  # noqa: E402
from nnc_web.engine.anomaly.maps import smooth_map  # noqa: E402
from nnc_web.engine.anomaly.padim import Padim  # noqa: E402
from nnc_web.engine.anomaly.patchcore import Patchcore  # noqa: E402

LITE0 = [24, 40, 112]  # blocks.1, blocks.2, blocks.4 channels


def cached_features(folder: Path) -> dict:
    """Every channel of PaDiM's (56 x 56) and PatchCore's (28 x 28) embedding of the hard case."""
    import anomaly_vs_anomalib as bench

    path = folder / "hard_features.pt"
    if path.exists():
        return torch.load(path)
    data = bench.load_data(folder, "hard")
    padim, patchcore = Padim("efficientnet_lite0", feature_ratio=1.0), Patchcore("efficientnet_lite0", feature_ratio=1.0)
    out: dict = {"labels": torch.tensor(data["labels"]), "masks": torch.from_numpy(data["mask_arrays"])}
    with torch.no_grad():
        for split in ("train", "test"):
            batches = [bench.tensors(data[split][i:i + 16]) for i in range(0, len(data[split]), 16)]
            out[f"padim_{split}"] = torch.cat([padim.embed(x) for x in batches])
            out[f"patchcore_{split}"] = torch.cat([patchcore.embed(x) for x in batches])
    torch.save(out, path)
    return out


class LayoutPadim(Padim):
    """Single mode's regions (what `layout=` measures): `ring` interior / whole border ring (the model
    before 2026-12-03's corners), `corners` interior / ring without corners / the four k x k corners
    pooled (Padim's default since), `corners4` each corner its own; `sides` each of the four sides (without corners) and each corner its own (9 Gaussians); `sides1`
    the four sides and the four corners pooled (6)."""

    def __init__(self, *args, layout: str = "corners", **kwargs) -> None:
        self.layout = layout
        super().__init__(*args, corners=layout != "ring", **kwargs)

    @property
    def gaussians(self) -> int:
        if self.layout in ("ring", "corners") or self.gaussian != "single" or not self.border:
            return super().gaussians
        return len(self.regions())

    def regions(self) -> list[torch.Tensor]:
        h, w, k = self.height, self.width, self.border
        if self.layout in ("ring", "corners") or not k:
            return super().regions()
        label = torch.zeros(h, w, dtype=torch.long)  # 0 interior
        corners = [(slice(0, k), slice(0, k)), (slice(0, k), slice(w - k, w)),
                   (slice(h - k, h), slice(0, k)), (slice(h - k, h), slice(w - k, w))]
        if self.layout in ("sides", "sides1"):
            label[:k], label[h - k:], label[:, :k], label[:, w - k:] = 1, 2, 3, 4
            first_corner = 5
        else:
            label[:k], label[h - k:], label[:, :k], label[:, w - k:] = 1, 1, 1, 1
            first_corner = 2
        for number, (rows, cols) in enumerate(corners):
            label[rows, cols] = first_corner + (number if self.layout in ("corners4", "sides") else 0)
        label = label.flatten()
        return [(label == g).nonzero().flatten() for g in range(int(label.max()) + 1)]


def padim_draw(cache: dict, mode: str, channels: torch.Tensor, edge: bool, border: int | None,
               layout: str = "corners") -> str:
    """Fit and score through Padim's own fit_embeddings / score_embedding on the cached features;
    `border` (single mode's ring in cells) defaults to the model's."""
    extra = {} if border is None else {"border": border}
    model = LayoutPadim("efficientnet_lite0", mode, channels=channels, pretrained=False, layout=layout, **extra)
    train, test = cache["padim_train"][:, channels], cache["padim_test"][:, channels]
    model.fit_embeddings(train[i:i + 16] for i in range(0, len(train), 16))
    maps = torch.cat([model.score_embedding(test[i:i + 16])[1] for i in range(0, len(test), 16)])
    return summary(cache, maps.numpy(), None, edge)


def summary(cache: dict, maps: np.ndarray, scores: np.ndarray | None, edge: bool) -> str:
    labels, masks = cache["labels"].numpy(), cache["masks"].numpy()
    flat = maps.reshape(len(maps), -1)
    scores = flat.max(1) if scores is None else scores
    line = f"image {roc_auc_score(labels, scores):.4f} pixel {roc_auc_score(masks.ravel(), maps.ravel()):.4f}"
    if edge:
        rows, cols = np.unravel_index(flat.argmax(1), maps.shape[1:])
        near = (np.minimum(rows, maps.shape[1] - 1 - rows) < 24) | (np.minimum(cols, maps.shape[2] - 1 - cols) < 24)
        inner = roc_auc_score(labels, maps[:, 24:-24, 24:-24].reshape(len(maps), -1).max(1))
        line += f"  max within 24 px of the border: {near.mean():.2f}; image AUROC of the interior's max {inner:.4f}"
    return line


def jl_dim(samples: int, eps: float = 0.9) -> int:
    """sklearn's / anomalib's johnson_lindenstrauss_min_dim (anomalib truncates, sklearn does too)."""
    return int(4 * np.log(samples) / (eps ** 2 / 2 - eps ** 3 / 3))


def sparse_matrix(features: int, dim: int, seed: int) -> torch.Tensor:
    """Li et al.'s very sparse projection as anomalib builds it: each entry is nonzero with probability
    1/sqrt(D), then +-sqrt(sqrt(D) / dim)."""
    generator = torch.Generator().manual_seed(seed)
    density = 1 / features ** 0.5
    keep = torch.rand(features, dim, generator=generator) < density
    signs = torch.randint(0, 2, (features, dim), generator=generator).float() * 2 - 1
    return keep * signs * (1 / density) ** 0.5 / dim ** 0.5


def k_center_from(points: torch.Tensor, size: int, start: int, exact: bool) -> torch.Tensor:
    """greedy_coreset's loop from a given start; `exact`: anomalib's |x - c| instead of the expansion."""
    norms = (points * points).sum(1)
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = index = start
    nearest = torch.full((len(points),), float("inf"))
    for step in range(size):
        if exact:
            distance = torch.linalg.vector_norm(points - points[index], dim=1).square_()
        else:
            distance = torch.addmv(norms, points, points[index], alpha=-2.0).add_(norms[index])
        torch.minimum(nearest, distance, out=nearest)
        nearest[index] = 0
        if step + 1 < size:
            index = int(torch.argmax(nearest))
            chosen[step + 1] = index
    return chosen


def select(bank: torch.Tensor, size: int, seed: int, variant: str) -> torch.Tensor:
    kind, _, dim_text = variant.partition("=")
    if kind == "default":
        return greedy_coreset(bank, size, seed)
    if kind.isdigit():  # principal axes (a Gaussian projection before 2026-12-03: now `gauss=N`)
        return greedy_coreset(bank, size, seed, projection_dim=int(kind))
    if kind in ("anomalib", "anomalibproj", "anomalibstart"):  # anomalib's code (.venv-bench), global RNGs seeded
        from anomalib.models.components.dimensionality_reduction import SparseRandomProjection
        from anomalib.models.components.sampling import KCenterGreedy

        torch.manual_seed(seed)
        np.random.seed(seed)
        if kind == "anomalib":
            return torch.tensor(KCenterGreedy(bank, size / len(bank)).select_coreset_idxs())
        projected = SparseRandomProjection(eps=0.9).fit(bank).transform(bank).contiguous()
        if kind == "anomalibstart":  # anomalib's projection and start (its next global draw), our loop
            return k_center_from(projected, size, int(torch.randint(high=len(bank), size=(1,)).squeeze()),
                                 "exact" in variant)
        return greedy_coreset(projected, size, seed, projection_dim=10 ** 9)
    if kind in ("meanstart", "farstart"):  # our 64-d projection, a deterministic start: nearest to / farthest from the mean
        matrix = torch.randn(bank.shape[1], 64, generator=torch.Generator().manual_seed(seed)) / 64 ** 0.5
        projected = bank @ matrix
        gaps = (projected - projected.mean(0)).square().sum(1)
        return k_center_from(projected, size, int(gaps.argmin() if kind == "meanstart" else gaps.argmax()), False)
    if kind == "random":
        return torch.randperm(len(bank), generator=torch.Generator().manual_seed(seed))[:size]
    if kind == "none64":
        return greedy_coreset(bank.double(), size, seed, projection_dim=10 ** 9)
    if kind in ("none", "nostart"):
        if kind == "nostart":  # a virtual start, then `size` chosen points
            return greedy_coreset(bank, size + 1, seed, projection_dim=10 ** 9)[1:]
        return greedy_coreset(bank, size, seed, projection_dim=10 ** 9)
    dim = jl_dim(len(bank)) if dim_text == "jl" else int(dim_text)
    if kind == "pca":  # the default's principal axes at another dim
        return greedy_coreset(bank, size, seed, projection_dim=dim)
    if kind == "gauss":
        matrix = torch.randn(bank.shape[1], dim, generator=torch.Generator().manual_seed(seed)) / dim ** 0.5
    elif kind == "sparse":
        matrix = sparse_matrix(bank.shape[1], dim, seed)
    else:
        raise SystemExit(f"unknown variant {variant}")
    return greedy_coreset(bank @ matrix, size, seed, projection_dim=10 ** 9)


def patchcore_draw(cache: dict, ratio: float, seed: int, variant: str, anomalib_scoring: bool = False) -> str:
    bank = cache["patchcore_train"].permute(0, 2, 3, 1).reshape(-1, 152).contiguous()
    count = cache["patchcore_test"].shape[0]
    test = cache["patchcore_test"].permute(0, 2, 3, 1).reshape(-1, 152)
    started = time.perf_counter()
    bank = bank[select(bank, int(len(bank) * ratio), seed, variant)]
    elapsed = time.perf_counter() - started
    norms = (bank * bank).sum(1)
    distances, nearest = nearest_neighbours(test, bank, norms)
    patch = distances[:, 0].reshape(count, -1)
    rows, worst = torch.arange(count), patch.argmax(1)
    features = test.reshape(count, -1, 152)[rows, worst]
    _, support = nearest_neighbours(bank[nearest[:, 0].reshape(count, -1)[rows, worst]], bank, norms, k=9)
    weights = 1 - torch.softmax(torch.linalg.vector_norm(features[:, None] - bank[support], dim=2), 1)[:, 0]
    maps = smooth_map(patch.reshape(count, 28, 28), 224).numpy()
    line = summary(cache, maps, (weights * patch[rows, worst]).numpy(), False) + f"  coreset {elapsed:.1f} s"
    if anomalib_scoring:
        line += f"  anomalib's scoring: {anomalib_scores(cache, bank)}"
    return line


def anomalib_scores(cache: dict, bank: torch.Tensor) -> str:
    """The same memory bank scored by anomalib's PatchcoreModel (its nearest_neighbors,
    compute_anomaly_score and anomaly_map_generator) on the cached embeddings: checks the scoring."""
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    model = PatchcoreModel(["blocks.2", "blocks.4"], "tf_efficientnet_lite0", pre_trained=False, num_neighbors=9).eval()
    model.memory_bank = bank
    scores, maps = [], []
    with torch.no_grad():
        for batch in cache["patchcore_test"].split(16):
            embedding = model.reshape_embedding(batch)
            patch, locations = model.nearest_neighbors(embedding=embedding, n_neighbors=1)
            patch, locations = patch.reshape(len(batch), -1), locations.reshape(len(batch), -1)
            scores.append(model.compute_anomaly_score(patch, locations, embedding))
            maps.append(model.anomaly_map_generator(patch.reshape(len(batch), 1, 28, 28), (224, 224))[:, 0])
    return summary(cache, torch.cat(maps).numpy(), torch.cat(scores).numpy(), False)


def main() -> None:
    torch.set_num_threads(2)
    folder, method, what, seeds = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    flags = sys.argv[5:]
    folder.mkdir(parents=True, exist_ok=True)
    cache = cached_features(folder)
    for seed in (int(s) for s in seeds.split(",")):
        if method == "padim":
            if "uniform" in flags:  # anomalib's draw: random.sample over every channel
                random.seed(seed)
                channels = torch.tensor(sorted(random.sample(range(sum(LITE0)), 100)))
            else:
                channels = flatten_selection(select_channels(LITE0, "auto", seed, 100), LITE0)
            borders = [int(f[7:]) for f in flags if f.startswith("border=")] or [None]
            layouts = [f[7:] for f in flags if f.startswith("layout=")] or ["corners"]
            for mode in what.split(","):
                for border in borders:
                    for layout in layouts:
                        print(f"padim {mode} {'uniform' if 'uniform' in flags else 'ours'} seed {seed}"
                              f"{'' if border is None else f' border {border}'}"
                              f"{'' if layout == 'corners' else f' layout {layout}'}: "
                              f"{padim_draw(cache, mode, channels, 'edge' in flags, border, layout)}", flush=True)
        else:
            for variant in [f for f in flags if f != "ascore"] or ["default"]:
                print(f"patchcore {what} {variant} seed {seed}: "
                      f"{patchcore_draw(cache, float(what), seed, variant, 'ascore' in flags)}", flush=True)


if __name__ == "__main__":
    main()
