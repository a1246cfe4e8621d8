"""The offline segmenter (LR-ASPP on EfficientNet-Lite0) learns synthetic masks; IoU checked by hand
(an ignored pixel included); evaluation files, bundle round trip and bad input."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from nnc_web.engine.classification_dataset import ShapingParams
from nnc_web.engine.dataset_outputs import OutputSpec
from nnc_web.engine.reporting import ConsoleReporter, UserError
from nnc_web.engine.segmentation import convert_segmentation
from nnc_web.engine.segmentation_training.bundle import load_segmenter, save_segmenter
from nnc_web.engine.segmentation_training.data import load_segmentation_csv
from nnc_web.engine.segmentation_training.evaluation import evaluate_segmenter
from nnc_web.engine.segmentation_training.metrics import confusion, segmentation_metrics
from nnc_web.engine.segmentation_training.trainer import SegmentationTrainer
from nnc_web.engine.training.trainer import TrainConfig

SIZE = 64
NAMES = ["background", "square", "disc"]


def pairs(root, count: int, seed: int = 0) -> list:
    """Textured images with a red square (class 1) and a green disc (class 2), their id masks."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    found = []
    for i in range(count):
        base = rng.integers(60, 140, size=(SIZE, SIZE, 1)) + rng.integers(-40, 40, size=(SIZE, SIZE, 3))
        image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        mask = Image.new("L", (SIZE, SIZE), 0)
        for cls, colour in ((1, (230, 40, 40)), (2, (40, 220, 60))):
            w = int(rng.integers(14, 26))
            x0, y0 = int(rng.integers(0, SIZE - w)), int(rng.integers(0, SIZE - w))
            shape = "ellipse" if cls == 2 else "rectangle"
            getattr(ImageDraw.Draw(image), shape)([x0, y0, x0 + w, y0 + w], fill=colour)
            getattr(ImageDraw.Draw(mask), shape)([x0, y0, x0 + w, y0 + w], fill=cls)
        image.save(root / f"i{i}.png")
        mask.save(root / f"m{i}.png")
        found.append((root / f"i{i}.png", root / f"m{i}.png", f"i{i}"))
    return found


def build(root, name: str, count: int, seed: int):
    (dataset,) = convert_segmentation(pairs(root / name, count, seed), root / f"work_{name}",
                                      ShapingParams(SIZE, SIZE, "resize", 3), dict(enumerate(NAMES)),
                                      OutputSpec(name, 100), False, 0, ConsoleReporter(root / "log", quiet=True))
    return load_segmentation_csv(dataset.folder / dataset.csv_name)


@pytest.fixture(scope="module")
def masks(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    return root, build(root, "train", 24, 0), build(root, "valid", 8, 1)


def config(**changes) -> TrainConfig:
    return TrainConfig(**{"max_epoch": 8, "batch_size": 8, "learning_rate": 3e-3, "schedule": "cosine",
                          "input_size": SIZE, "augmentation": ["flip"], "device": "auto", **changes})


def test_the_segmenter_learns_and_evaluates(masks, tmp_path):
    root, train, valid = masks
    assert train.class_names == NAMES  # the label map travels in the header
    torch.set_num_threads(2)
    reporter = ConsoleReporter(tmp_path, quiet=True)
    result = SegmentationTrainer(train, valid, NAMES, config(), tmp_path, reporter).run()
    device = next(result.model.parameters()).device
    metrics = evaluate_segmenter(tmp_path, result.model, valid, NAMES, SIZE, device, reporter)
    assert metrics["mean_iou"] >= 0.6, reporter.lines[-4:]
    assert json.loads((tmp_path / "metrics.json").read_text())["per_category_iou"][1] > 0.3
    assert np.asarray(metrics["confusion_matrix"]).sum() == len(valid.images) * SIZE * SIZE
    with open(tmp_path / "output_result.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][-2:] == ["y':mask", "#pixel_error"]
    predicted = np.asarray(Image.open(tmp_path / rows[1][-2][2:]))
    assert predicted.shape == (SIZE, SIZE) and set(np.unique(predicted)) <= {0, 1, 2}
    assert {"loss", "train_loss", "valid_mean_iou"} <= {name for name, _, _ in reporter.metrics}
    save_segmenter(tmp_path / "model", result.model, NAMES, SIZE, {}, {})
    loaded, manifest = load_segmenter(tmp_path / "model")
    image = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.allclose(loaded(image), result.model.cpu()(image), atol=1e-4)
    assert manifest["id2label"] == {"0": "background", "1": "square", "2": "disc"}


def test_iou_against_hand_computation():
    truth = np.array([[0, 0, 1, 1], [0, 255, 2, 2]])
    predicted = np.array([[0, 1, 1, 1], [0, 2, 2, 0]])  # the ignored pixel's prediction does not count
    metrics = segmentation_metrics(confusion(truth, predicted, 3), NAMES)
    # class 0: truth (0,0) (0,1) (1,0), predicted (0,0) (1,0) (1,3): 2 / 4; class 1: truth 2 pixels, predicted
    # 3 holding them: 2 / 3; class 2: truth (1,2) (1,3), predicted (1,2) ((1,1) is ignored): 1 / 2
    assert metrics["per_category_iou"] == pytest.approx([2 / 4, 2 / 3, 1 / 2])
    assert metrics["per_category_accuracy"] == pytest.approx([2 / 3, 1.0, 1 / 2])
    assert metrics["mean_iou"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    assert metrics["overall_accuracy"] == pytest.approx(5 / 7)
    absent = segmentation_metrics(confusion(np.zeros((2, 2)), np.zeros((2, 2)), 2), ["a", "b"])
    assert absent["per_category_iou"] == [1.0, None] and absent["mean_iou"] == 1.0


def test_bad_input_is_a_clear_message(masks, tmp_path):
    _, train, valid = masks
    with pytest.raises(UserError, match=r"class ids 2 outside the label map \(0..1, 255 = ignore\)"):
        SegmentationTrainer(train, valid, NAMES[:2], config(), tmp_path, ConsoleReporter(tmp_path, quiet=True))
    (tmp_path / "c.csv").write_text("x:image,y:label\na.png,0\n")
    with pytest.raises(UserError, match="not a segmentation dataset"):
        load_segmentation_csv(tmp_path / "c.csv")
