"""Training's memory guard: what autograd keeps is measured, and a step that would not fit is refused
before the first epoch with a batch that does fit."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nnc_web.engine.reporting import UserError
from nnc_web.engine.training import memory_guard
from nnc_web.engine.training.trainer import TrainConfig, Trainer
from tests.engine.test_distributed_training import Recorder, digits  # noqa: F401 - the module fixture

CPU = torch.device("cpu")


def test_saved_bytes_are_what_autograd_keeps():
    """Conv2d keeps its input and weight, ReLU its output: 3 + 4 channels of S x S float32 and the weight."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    weight = 4 * 3 * 3 * 3 * 4
    for size in (16, 32):
        assert memory_guard.saved_bytes_per_image(model, model, size, CPU) == (3 + 4) * size * size * 4 + weight
    frozen = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).requires_grad_(False)
    assert memory_guard.saved_bytes_per_image(frozen, frozen, 32, CPU) == 0  # nothing to differentiate
    batch_norm = nn.BatchNorm2d(3)
    batch_norm.train()
    memory_guard.saved_bytes_per_image(batch_norm, batch_norm, 8, CPU)
    assert batch_norm.training and int(batch_norm.num_batches_tracked) == 0  # the probe moved no statistic


def test_a_step_that_does_not_fit_is_refused_with_a_batch_that_fits(monkeypatch):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    per_image = memory_guard.saved_bytes_per_image(model, model, 64, CPU)
    free = 40 * per_image
    monkeypatch.setattr(memory_guard, "available_bytes", lambda device: free)
    assert memory_guard.check_step_fits(model, 64, 8, CPU) == memory_guard.step_bytes(per_image, 8, model.parameters())
    with pytest.raises(UserError, match=r"a training step of batch_size 64 at 64 x 64 px needs about .* GiB of "
                                        r"memory, and .* GiB are free on cpu: lower batch_size to (\d+) or less") as refused:
        memory_guard.check_step_fits(model, 64, 64, CPU)
    fits = int(refused.value.args[0].rsplit("to ", 1)[1].split()[0])
    usable = free * memory_guard.USABLE
    assert memory_guard.step_bytes(per_image, fits, model.parameters()) <= usable
    assert memory_guard.step_bytes(per_image, fits + 1, model.parameters()) > usable
    share = (free // 4) * memory_guard.USABLE  # CPU ranks of one machine share its memory
    per_process = max(n for n in range(1, 33) if memory_guard.step_bytes(per_image, n, model.parameters()) <= share)
    assert per_process < fits
    with pytest.raises(UserError, match=f"each process takes {per_process} images or fewer"):
        memory_guard.check_step_fits(model, 64, 32, CPU, processes=4)
    monkeypatch.setattr(memory_guard, "available_bytes", lambda device: per_image)
    with pytest.raises(UserError, match="lower input_size, or use a machine with more memory"):
        memory_guard.check_step_fits(model, 64, 2, CPU)


def test_the_trainer_refuses_before_its_first_epoch(digits, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(memory_guard, "available_bytes", lambda device: 64 * 1024 ** 2)
    reporter = Recorder(tmp_path)
    config = TrainConfig(max_epoch=1, batch_size=512, train_param="all", input_size=224, warm_up=False)
    trainer = Trainer("efficientnet_lite0", digits[0], digits[1], config, tmp_path / "run", reporter,
                      cache_dir=tmp_path / "cache")
    with pytest.raises(UserError, match="a training step of batch_size 512 at 224 x 224 px needs about"):
        trainer.run()
    assert not any(line.startswith("epoch") for line in reporter.lines)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
