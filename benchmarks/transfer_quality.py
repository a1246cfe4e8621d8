"""Transfer-learning quality on held-out real digits (scikit-learn's 1,797, 80/20, at 64 px), EfficientNet-Lite0,
8 epochs, batch 64, the project's other defaults (Adam, learning rate 1e-3, no schedule, save_best), one run,
one split, one feature cache:

- ours, `last_fc_only` at default settings (the head fitted on the cached features);
- the logistic-regression optimum: scikit-learn's LogisticRegression on the very same cached features,
  C tuned on the validation split (the linear probe's best);
- the head as it was trained before (mini-batch Adam at 1e-3 over the cached features), for reference;
- ours, `all` (head warmed up first, then every layer, the backbone at 0.1x the rate, cosine schedule).

Targets: ours within 1 point of scikit-learn's best, in less time than its search; `all` above both.
Everything runs on one thread (torch and scikit-learn's BLAS/OpenMP alike): on a shared machine two
threads each made both fits many times slower and the timings meaningless; one thread is the same
resource for both.

    .venv/bin/python benchmarks/transfer_quality.py
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from benchmarks._digits import digit_datasets  # noqa: E402
from nnc_web.engine.reporting import ConsoleReporter  # noqa: E402
from nnc_web.engine.training.trainer import TrainConfig, Trainer  # noqa: E402

SIZE, EPOCHS, BATCH = 64, 8, 64
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def trainer_for(train, valid, workdir: Path, cache: Path, **config) -> tuple[Trainer, ConsoleReporter]:
    reporter = ConsoleReporter(workdir, quiet=True)
    settings = TrainConfig(**{"max_epoch": EPOCHS, "batch_size": BATCH, "input_size": SIZE, **config})
    return Trainer("efficientnet_lite0", train, valid, settings, workdir, reporter, cache_dir=cache), reporter


def best_accuracy(result) -> float:
    return 1 - min(h["valid_error"] for h in result.history)


def sklearn_search(train_x: np.ndarray, train_y: list[int], valid_x: np.ndarray, valid_y: list[int]
                   ) -> tuple[float, float, float]:
    """The best validation accuracy over C, that C, and the seconds the whole search took."""
    started = time.perf_counter()
    best = (0.0, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in C_GRID:
            score = LogisticRegression(C=c, max_iter=1000).fit(train_x, train_y).score(valid_x, valid_y)
            best = max(best, (score, c))
    return best[0], best[1], time.perf_counter() - started


def adam_head(train_x: np.ndarray, train_y: list[int], valid_x: np.ndarray, valid_y: list[int]) -> float:
    """The head as the trainer fitted it before: mini-batch Adam at 1e-3, best epoch on validation."""
    torch.manual_seed(0)
    head = torch.nn.Linear(train_x.shape[1], 10)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    x, y = torch.from_numpy(train_x), torch.tensor(train_y)
    vx, vy = torch.from_numpy(valid_x), torch.tensor(valid_y)
    best = 0.0
    for epoch in range(1, EPOCHS + 1):
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(y), BATCH):
            batch = order[start:start + BATCH]
            loss = torch.nn.functional.cross_entropy(head(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            best = max(best, float((head(vx).argmax(1) == vy).float().mean()))
    return best


def main() -> None:
    torch.set_num_threads(1)
    threadpool_limits(1)
    root = Path(tempfile.mkdtemp(prefix="nnc-transfer-quality-"))
    try:
        train, valid = digit_datasets(root, per_class=200, size=SIZE)
        print(f"{len(train.labels)} training, {len(valid.labels)} validation digits at {SIZE} px, "
              f"{EPOCHS} epochs, batch {BATCH}")
        cache = root / "cache"
        warm, _ = trainer_for(train, valid, root / "features", cache, max_epoch=1)
        started = time.perf_counter()
        warm.run()  # computes and caches the features: every figure below uses the same ones
        print(f"features computed and cached in {time.perf_counter() - started:.1f} s")
        train_x, valid_x = (np.load(warm._cache_path(d)) for d in (train, valid))

        ours, reporter = trainer_for(train, valid, root / "ours", cache)
        started = time.perf_counter()
        result = ours.run()
        ours_run = time.perf_counter() - started
        ours_fit = sum(h["seconds"] for h in result.history)
        ours_accuracy = best_accuracy(result)
        print("\n".join(line for line in reporter.lines if line.startswith(("the head", "epoch", "kept"))))

        sk_accuracy, sk_c, sk_seconds = sklearn_search(train_x, train.labels, valid_x, valid.labels)
        before = adam_head(train_x, train.labels, valid_x, valid.labels)

        tuned, reporter = trainer_for(train, valid, root / "all", cache, train_param="all", schedule="cosine")
        started = time.perf_counter()
        all_result = tuned.run()
        all_seconds = time.perf_counter() - started
        print("\n".join(line for line in reporter.lines if line.startswith(("warm-up", "epoch", "kept"))))

        print(f"RESULT last_fc_only_accuracy={ours_accuracy:.4f} fit_s={ours_fit:.2f} run_s={ours_run:.2f}")
        print(f"RESULT sklearn_logreg_best_accuracy={sk_accuracy:.4f} C={sk_c:g} search_s={sk_seconds:.2f}")
        print(f"RESULT gap_points={100 * (sk_accuracy - ours_accuracy):.2f} "
              f"speed_ratio_sklearn_over_ours={sk_seconds / ours_run:.1f}")
        print(f"RESULT before_adam_head_accuracy={before:.4f}")
        print(f"RESULT all_accuracy={best_accuracy(all_result):.4f} run_s={all_seconds:.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
