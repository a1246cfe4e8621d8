"""10 epochs of transfer learning with last_fc_only: with the bottleneck cache vs without (the frozen
backbone runs every epoch), same data and model, same run. Target: >= 5x.

    .venv/bin/python benchmarks/bottleneck_cache.py
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks._digits import digit_datasets  # noqa: E402
from nnc_web.engine.reporting import ConsoleReporter  # noqa: E402
from nnc_web.engine.training.trainer import TrainConfig, Trainer  # noqa: E402


def timed(train, valid, workdir: Path, cache: bool) -> tuple[float, float]:
    config = TrainConfig(max_epoch=10, batch_size=32, input_size=96, feature_cache=cache)
    trainer = Trainer("efficientnet_lite0", train, valid, config, workdir, ConsoleReporter(workdir, quiet=True))
    start = time.perf_counter()
    result = trainer.run()
    return time.perf_counter() - start, 1 - min(h["valid_error"] for h in result.history)


def main() -> None:
    torch.set_num_threads(2)
    root = Path(tempfile.mkdtemp(prefix="nnc-cache-bench-"))
    try:
        train, valid = digit_datasets(root, per_class=60)
        print(f"{len(train.labels)} training, {len(valid.labels)} validation digits at 96 px, 10 epochs")
        without, accuracy_without = timed(train, valid, root / "without", cache=False)
        with_cache, accuracy_with = timed(train, valid, root / "with", cache=True)
        print(f"RESULT without_cache_s={without:.1f} accuracy={accuracy_without:.3f}")
        print(f"RESULT with_cache_s={with_cache:.1f} accuracy={accuracy_with:.3f}")
        print(f"RESULT speedup={without / with_cache:.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
