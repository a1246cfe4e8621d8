"""The distributed path's overhead on CPU: the same fine-tuning (EfficientNet-Lite0, train_param=all,
real digits, global batch 32) in 1 process and in 2 gloo processes (DistributedDataParallel, each rank
16 images a step, one torch thread each on 2 cores). On 2 cores this measures overhead, not speed-up:
the figure to keep is the epoch-time ratio, and the accuracies must agree (same global batches).

    .venv/bin/python benchmarks/ddp_cpu.py
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._digits import digit_datasets  # noqa: E402
from nnc_web.engine.reporting import ConsoleReporter  # noqa: E402
from nnc_web.engine.training.trainer import TrainConfig, Trainer  # noqa: E402

EPOCHS, BATCH, SIZE, PER_CLASS = 4, 32, 32, 24


def one_run(data, root: Path, devices: int) -> dict:
    config = TrainConfig(max_epoch=EPOCHS, batch_size=BATCH, input_size=SIZE, train_param="all", warm_up=False,
                         devices=devices, save_best=False)
    started = time.perf_counter()
    result = Trainer("efficientnet_lite0", data[0], data[1], config, root / f"devices{devices}",
                     ConsoleReporter(root / f"devices{devices}", quiet=True)).run()
    wall = time.perf_counter() - started
    epochs = [h["seconds"] for h in result.history[1:]]  # the first epoch warms caches up
    return {"epoch_s": sum(epochs) / len(epochs), "wall_s": wall, "accuracy": 1 - result.history[-1]["valid_error"],
            "losses": [round(h["train_loss"], 4) for h in result.history]}


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="ddp-cpu-"))
    try:
        data = digit_datasets(root / "digits", PER_CLASS, size=SIZE)
        one, two = one_run(data, root, 1), one_run(data, root, 2)
        print(f"data: {len(data[0].labels)} training, {len(data[1].labels)} validation digits at {SIZE} px; "
              f"{EPOCHS} epochs, global batch {BATCH}")
        for name, run in (("1 process", one), ("2 gloo processes", two)):
            print(f"RESULT ddp_cpu {name:>16}: epoch {run['epoch_s']:.2f} s, whole run {run['wall_s']:.1f} s "
                  f"(start-up included), final accuracy {run['accuracy']:.4f}, train loss {run['losses']}")
        print(f"RESULT ddp_cpu epoch time ratio 2 gloo / 1 process: {two['epoch_s'] / one['epoch_s']:.2f} "
              f"(whole run {two['wall_s'] / one['wall_s']:.2f}); accuracy {one['accuracy']:.4f} vs "
              f"{two['accuracy']:.4f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
