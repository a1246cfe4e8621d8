"""Transfer learning on real digits: accuracy, the bottleneck cache, resume, cancel, evaluation, bundles."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from nnc_web.engine.classification_dataset import OutputSpec, ShapingParams, build_classification_datasets
from nnc_web.engine.reporting import ConsoleReporter, JobCancelled
from nnc_web.engine.training.bundle import export_torchscript, load_bundle, save_bundle
from nnc_web.engine.training.data import load_classification_csv
from nnc_web.engine.training.evaluation import (
    classification_metrics,
    most_least_activating,
    predict,
    write_output_result,
)
from nnc_web.engine.training.trainer import BACKBONE_LR_FACTOR, TrainConfig, Trainer
from tests.sample_data import digit_images

SIZE = 64


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """scikit-learn's real handwritten digits, 60 per class, as NNC train/valid datasets (80/20)."""
    root = tmp_path_factory.mktemp("digits")
    for label, images in digit_images(60, 10, size=32).items():
        (root / "src" / label).mkdir(parents=True)
        for i, image in enumerate(images):
            image.save(root / "src" / label / f"{i}.png")
    train, valid = build_classification_datasets(
        root / "src", root / "work", ShapingParams(32, 32, "resize", 3),
        [OutputSpec("train", 80), OutputSpec("valid", 20)], True, 0, ConsoleReporter(root / "log", quiet=True))
    return load_classification_csv(train.folder / train.csv_name), load_classification_csv(valid.folder / valid.csv_name)


class StopAfter(ConsoleReporter):
    """Asks to stop once `count` metrics named `name` were reported."""

    def __init__(self, workdir, name: str, count: int) -> None:
        super().__init__(workdir, quiet=True)
        self.name, self.count = name, count

    def should_stop(self) -> bool:
        return sum(1 for m in self.metrics if m[0] == self.name) >= self.count


def train(digits, workdir, reporter=None, **config):
    settings = {"max_epoch": 10, "input_size": SIZE, "learning_rate": 1e-3, **config}
    reporter = reporter or ConsoleReporter(workdir, quiet=True)
    trainer = Trainer("efficientnet_lite0", digits[0], digits[1], TrainConfig(**settings), workdir, reporter)
    return trainer, reporter


def accuracy(result) -> float:
    """Validation accuracy of the model the run returned (the best epoch's, with save_best)."""
    errors = [h["valid_error"] for h in result.history]
    return 1 - (min(errors) if result.config.save_best else errors[-1])


def test_pretrained_features_learn_digits_and_random_weights_do_clearly_worse(digits, tmp_path):
    trainer, reporter = train(digits, tmp_path / "pre")
    result = trainer.run()
    pretrained = accuracy(result)
    assert pretrained >= 0.90, result.history
    trainer, _ = train(digits, tmp_path / "random", pretrained=False)
    random_weights = accuracy(trainer.run())
    assert random_weights <= pretrained - 0.05, (pretrained, random_weights)
    names = [m[0] for m in reporter.metrics]
    assert names.count("train_loss") == names.count("valid_error") == 10 and names.count("loss") == 10 * 15
    assert any(line.startswith("epoch 10/10: train loss") for line in reporter.lines)


def test_bottleneck_cache_is_reused_and_invalidated(digits, tmp_path):
    cache = tmp_path / "cache"
    first, reporter = train(digits, tmp_path / "a", max_epoch=1)
    first.cache_dir = cache
    first.run()
    assert "training: computing bottleneck features of 480 images" in reporter.lines
    again, reporter = train(digits, tmp_path / "b", max_epoch=1)
    again.cache_dir = cache
    again.run()
    assert "training: bottleneck features from the cache" in reporter.lines
    bigger, reporter = train(digits, tmp_path / "c", max_epoch=1, input_size=SIZE + 32)
    bigger.cache_dir = cache
    bigger.run()
    assert "training: computing bottleneck features of 480 images" in reporter.lines  # new input size
    augmented, reporter = train(digits, tmp_path / "d", max_epoch=1, augmentation=["flip"])
    augmented.cache_dir = cache
    augmented.run()
    assert any("the bottleneck cache is off" in line for line in reporter.lines)


def test_resume_after_an_interruption_gives_the_same_model(digits, tmp_path):
    whole, _ = train(digits, tmp_path / "whole", max_epoch=4, save_best=False)
    reference = whole.run().model
    interrupted, reporter = train(digits, tmp_path / "cut", StopAfter(tmp_path / "cut", "valid_error", 2),
                                  max_epoch=4, save_best=False)
    with pytest.raises(JobCancelled):
        interrupted.run()
    resumed, reporter = train(digits, tmp_path / "cut", max_epoch=4, save_best=False)
    result = resumed.run(resume=True)
    assert "resuming after epoch 2 from the checkpoint" in reporter.lines
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert torch.equal(result.model.head.weight, reference.head.weight)


def test_a_damaged_checkpoint_is_a_clear_error_and_writes_never_leave_one(digits, tmp_path):
    from nnc_web.engine.atomic import replace_atomically
    from nnc_web.engine.reporting import UserError

    trainer, _ = train(digits, tmp_path / "run", max_epoch=1, save_best=False)
    trainer.run()
    good = trainer.checkpoint_path.read_bytes()

    def dies_mid_write(path):  # a worker killed while saving
        path.write_bytes(good[:100])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replace_atomically(trainer.checkpoint_path, dies_mid_write)
    assert trainer.checkpoint_path.read_bytes() == good  # the previous checkpoint is whole
    assert [p.name for p in trainer.checkpoint_path.parent.iterdir() if p.name.endswith(".partial")] == []
    trainer.checkpoint_path.write_bytes(b"")  # as a kill mid-write left it before writes were atomic
    again, _ = train(digits, tmp_path / "run", max_epoch=2, save_best=False)
    with pytest.raises(UserError, match="checkpoint of this run cannot be read"):
        again.run(resume=True)


def test_cancel_stops_within_one_batch(digits, tmp_path):
    trainer, reporter = train(digits, tmp_path, StopAfter(tmp_path, "loss", 7))
    with pytest.raises(JobCancelled):
        trainer.run()
    assert sum(1 for m in reporter.metrics if m[0] == "loss") == 7


def test_fine_tuning_all_gives_the_backbone_a_lower_rate(digits, tmp_path):
    trainer, _ = train(digits, tmp_path, train_param="all", max_epoch=1, learning_rate=1e-3)
    from nnc_web.engine.training.model import TransferClassifier

    optimizer = trainer._optimizer(TransferClassifier("efficientnet_lite0", 10))
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(1e-3 * BACKBONE_LR_FACTOR), 1e-3]


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("trained")
    trainer, _ = train(digits, workdir, max_epoch=5)
    return trainer.run().model, workdir


def test_evaluation_metrics_match_scikit_learn(trained, digits, tmp_path):
    model, _ = trained
    valid = digits[1]
    scores = predict(model, valid, "efficientnet_lite0", SIZE, torch.device("cpu"), ConsoleReporter(tmp_path, True))
    predicted = scores.argmax(1)
    metrics = classification_metrics(valid.labels, scores, valid.class_names)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(valid.labels, predicted))
    for name, function in (("precision_macro", precision_score), ("recall_macro", recall_score),
                           ("f1_macro", f1_score)):
        assert metrics[name] == pytest.approx(function(valid.labels, predicted, average="macro", zero_division=0))
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.sum() == len(valid.labels) and matrix.trace() == (predicted == np.array(valid.labels)).sum()
    assert matrix.sum(axis=1).tolist() == [c["support"] for c in metrics["per_class"]]
    assert np.allclose(np.array(metrics["confusion_matrix_normalized"]).sum(axis=1), 1)
    extremes = most_least_activating(valid.labels, scores, count=2)
    for entry in extremes:
        own = [i for i, label in enumerate(valid.labels) if label == entry["class"]]
        assert scores[entry["most"][0], entry["class"]] == max(scores[own, entry["class"]])
        assert scores[entry["least"][0], entry["class"]] == min(scores[own, entry["class"]])


def test_output_result_csv_is_nnc_format(trained, digits, tmp_path):
    model, _ = trained
    valid = digits[1]
    scores = predict(model, valid, "efficientnet_lite0", SIZE, torch.device("cpu"), ConsoleReporter(tmp_path, True))
    write_output_result(tmp_path / "output_result.csv", valid, scores)
    with open(tmp_path / "output_result.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == valid.header + [f"y'__{k}" for k in range(10)]
    assert len(rows) == len(valid.labels) + 1
    for row in rows[1:]:
        assert row[0].startswith("/") and (tmp_path / row[0]).exists()
        assert sum(float(v) for v in row[2:]) == pytest.approx(1, abs=1e-4)


def test_bundle_reloads_with_identical_predictions(trained, digits, tmp_path):
    model, _ = trained
    save_bundle(tmp_path / "bundle", model, "efficientnet_lite0", digits[0].class_names, SIZE,
                {"max_epoch": 5}, {"train": 1, "valid": 2})
    loaded, manifest = load_bundle(tmp_path / "bundle")
    assert manifest["class_names"] == [str(i) for i in range(10)] and manifest["input_size"] == SIZE
    batch = torch.randn(4, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(loaded(batch), model(batch))
    scripted = torch.jit.load(str(export_torchscript(loaded, SIZE, tmp_path / "model.pt")))
    with torch.no_grad():
        assert torch.allclose(scripted(batch), model(batch), atol=1e-5)
