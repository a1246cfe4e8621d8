"""Our trainer vs a bare PyTorch loop: same model (EfficientNet-Lite0 fine-tuned, train_param=all),
data, batch size, epochs, optimizer and per-epoch validation; ours adds metrics, logs, checkpoints
and the best model. Both timers include building the model. Target: ratio ours/bare <= 1.10.

    .venv/bin/python benchmarks/train_overhead.py
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from benchmarks._digits import digit_datasets  # noqa: E402
from nnc_web.engine.reporting import ConsoleReporter  # noqa: E402
from nnc_web.engine.training.data import ImageDataset  # noqa: E402
from nnc_web.engine.training.model import TransferClassifier  # noqa: E402
from nnc_web.engine.training.trainer import BACKBONE_LR_FACTOR, TrainConfig, Trainer, transforms_for  # noqa: E402

EPOCHS, BATCH, SIZE, LR = 3, 16, 64, 1e-3


def bare(train, valid) -> float:
    start = time.perf_counter()  # model construction included: ours builds its model inside run()
    torch.manual_seed(0)
    model = TransferClassifier("efficientnet_lite0", 10)
    optimizer = torch.optim.Adam([{"params": model.features.parameters(), "lr": LR * BACKBONE_LR_FACTOR},
                                  {"params": model.head.parameters(), "lr": LR}])
    transform = transforms_for("efficientnet_lite0", SIZE, [])
    loader = DataLoader(ImageDataset(train.images, train.labels, transform), batch_size=BATCH, shuffle=True)
    valid_loader = DataLoader(ImageDataset(valid.images, valid.labels, transform), batch_size=BATCH)
    for _ in range(EPOCHS):
        model.train()
        for images, labels in loader:
            loss = torch.nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            sum(int((model(x).argmax(1) != y).sum()) for x, y in valid_loader)
    return time.perf_counter() - start


def ours(train, valid, workdir: Path) -> float:
    config = TrainConfig(max_epoch=EPOCHS, batch_size=BATCH, input_size=SIZE, learning_rate=LR, train_param="all",
                         warm_up=False)  # the bare loop has no head warm-up: compare the same work
    trainer = Trainer("efficientnet_lite0", train, valid, config, workdir, ConsoleReporter(workdir, quiet=True))
    start = time.perf_counter()
    trainer.run()
    return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(2)
    root = Path(tempfile.mkdtemp(prefix="nnc-overhead-bench-"))
    try:
        train, valid = digit_datasets(root, per_class=30)
        print(f"{len(train.labels)} training images, {EPOCHS} epochs, batch {BATCH}, {SIZE} px, fine-tuning all")
        bare_s = min(bare(train, valid) for _ in range(2))
        ours_s = min(ours(train, valid, root / f"ours{i}") for i in range(2))
        print(f"RESULT bare_s={bare_s:.2f}")
        print(f"RESULT ours_s={ours_s:.2f}")
        print(f"RESULT ratio_ours_over_bare={ours_s / bare_s:.3f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
