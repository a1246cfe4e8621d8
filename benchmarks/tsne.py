"""t-SNE of 5,000 real 64-d vectors: our `embed` (openTSNE: FFT gradients with one interpolation point above 2,000 rows) vs scikit-learn's
`TSNE(n_components=2, random_state=0)`, NNC's settings, same data and same run. Target: >= 2x, with
a trustworthiness no worse than scikit-learn's by more than 0.01.

The vectors are scikit-learn's handwritten digits (8 x 8) shifted by up to one pixel each way (the
usual augmentation), 5,000 drawn from the 9 x 1,797 shifted images.

    .venv/bin/python benchmarks/tsne.py [rows]    (default 5000, at most 16173)
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.manifold import TSNE, trustworthiness  # noqa: E402

from nnc_web.engine.analysis.tsne import embed  # noqa: E402

ROWS = 5_000


def shifted_digits(rows: int, seed: int = 0) -> np.ndarray:
    images = load_digits().images
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    shifts = [padded[:, 1 + dy:9 + dy, 1 + dx:9 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    every = np.concatenate(shifts).reshape(-1, 64)
    return every[np.random.default_rng(seed).choice(len(every), rows, replace=False)]


def timed(fit) -> tuple[np.ndarray, float, float]:
    """The embedding, wall seconds and CPU seconds (all threads): on a shared box the CPU time shows
    the work done when other processes take cores away from the wall-clock figure."""
    wall, cpu = time.perf_counter(), time.process_time()
    embedding = fit()
    return embedding, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    data = shifted_digits(int(sys.argv[1]) if len(sys.argv) > 1 else ROWS)
    print(f"{len(data)} shifted digits, {data.shape[1]} dims, load average {os.getloadavg()[0]:.1f}")
    ours, ours_s, ours_cpu = timed(lambda: embed(data))
    theirs, sklearn_s, sklearn_cpu = timed(lambda: TSNE(n_components=2, random_state=0).fit_transform(data))
    print(f"RESULT ours_s={ours_s:.1f}")
    print(f"RESULT sklearn_s={sklearn_s:.1f}")
    print(f"RESULT ours_cpu_s={ours_cpu:.1f}")
    print(f"RESULT sklearn_cpu_s={sklearn_cpu:.1f}")
    print(f"RESULT ours_trustworthiness={trustworthiness(data, ours, n_neighbors=5):.4f}")
    print(f"RESULT sklearn_trustworthiness={trustworthiness(data, theirs, n_neighbors=5):.4f}")
    print(f"RESULT load_average={os.getloadavg()[0]:.1f}")
    print(f"RESULT speedup={sklearn_s / ours_s:.1f}")


if __name__ == "__main__":
    main()
