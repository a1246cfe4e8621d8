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

    nice -n 10 .venv/bin/python benchmarks/anomaly_draws.py CACHE padim dense,1/16,single 0,1,2 [uniform] [edge] [border=0 border=4 ...]
    nice -n 10 .venv/bin/python benchmarks/anomaly_draws.py CACHE patchcore 0.01 0,1,2 [64|152]
"""
from __future__ import annotations

import os
import random
import sys
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


def padim_draw(cache: dict, mode: str, channels: torch.Tensor, edge: bool, border: int | None) -> str:
    """Fit and score through Padim's own fit_embeddings / score_embedding on the cached features;
    `border` (single mode's ring in cells) defaults to the model's."""
    extra = {} if border is None else {"border": border}
    model = Padim("efficientnet_lite0", mode, channels=channels, pretrained=False, **extra)
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


def patchcore_draw(cache: dict, ratio: float, seed: int, projection: int) -> str:
    bank = cache["patchcore_train"].permute(0, 2, 3, 1).reshape(-1, 152).contiguous()
    count = cache["patchcore_test"].shape[0]
    test = cache["patchcore_test"].permute(0, 2, 3, 1).reshape(-1, 152)
    bank = bank[greedy_coreset(bank, int(len(bank) * ratio), seed, projection_dim=projection)]
    norms = (bank * bank).sum(1)
    distances, nearest = nearest_neighbours(test, bank, norms)
    patch = distances[:, 0].reshape(count, -1)
    rows, worst = torch.arange(count), patch.argmax(1)
    features = test.reshape(count, -1, 152)[rows, worst]
    _, support = nearest_neighbours(bank[nearest[:, 0].reshape(count, -1)[rows, worst]], bank, norms, k=9)
    weights = 1 - torch.softmax(torch.linalg.vector_norm(features[:, None] - bank[support], dim=2), 1)[:, 0]
    maps = smooth_map(patch.reshape(count, 28, 28), 224).numpy()
    return summary(cache, maps, (weights * patch[rows, worst]).numpy(), False)


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
            for mode in what.split(","):
                for border in borders:
                    print(f"padim {mode} {'uniform' if 'uniform' in flags else 'ours'} seed {seed}"
                          f"{'' if border is None else f' border {border}'}: "
                          f"{padim_draw(cache, mode, channels, 'edge' in flags, border)}", flush=True)
        else:
            projection = int(flags[0]) if flags else 64
            print(f"patchcore {what} projection {projection} seed {seed}: "
                  f"{patchcore_draw(cache, float(what), seed, projection)}", flush=True)


if __name__ == "__main__":
    main()
