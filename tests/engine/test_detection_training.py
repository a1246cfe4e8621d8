"""The offline detector (CenterNet on EfficientNet-Lite0) learns a synthetic shapes set converted by our
own YOLO v2 plugin; COCO mAP checked by hand; augmentation moves boxes with pixels; resume, cancel,
evaluation files, bundle round trip and bad input."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from nnc_web.engine.classification_dataset import ShapingParams
from nnc_web.engine.dataset_outputs import OutputSpec
from nnc_web.engine.detection import Box
from nnc_web.engine.detection_dataset import DetectionParams, build_detection_datasets
from nnc_web.engine.detection_training.bundle import load_detector, save_detector
from nnc_web.engine.detection_training.data import (
    DetectionData,
    affine_boxes,
    affine_image,
    load_detection_csv,
)
from nnc_web.engine.detection_training.evaluation import evaluate_detector
from nnc_web.engine.detection_training.metrics import coco_precision, detection_metrics
from nnc_web.engine.detection_training.model import CenterNetDetector
from nnc_web.engine.detection_training.trainer import DetectionTrainer, predict_boxes, truths_of
from nnc_web.engine.reporting import ConsoleReporter, JobCancelled, UserError
from nnc_web.engine.training.trainer import TrainConfig

SIZE = 64
NAMES = ["red_square", "green_disc", "blue_bar"]
COLOURS = [(230, 40, 40), (40, 220, 60), (50, 80, 240)]


def shapes_source(root, count: int, seed: int = 0) -> None:
    """Textured backgrounds with 1-2 shapes of three classes each, YOLO v2 .txt labels beside."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        base = rng.integers(60, 140, size=(96, 96, 1)) + rng.integers(-40, 40, size=(96, 96, 3))
        image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        draw, lines = ImageDraw.Draw(image), []
        for _ in range(int(rng.integers(1, 3))):
            cls = int(rng.integers(0, 3))
            w, h = int(rng.integers(22, 40)), int(rng.integers(22, 40))
            if cls == 2:
                h = w // 2
            x0, y0 = int(rng.integers(0, 96 - w)), int(rng.integers(0, 96 - h))
            shape = draw.ellipse if cls == 1 else draw.rectangle
            shape([x0, y0, x0 + w - 1, y0 + h - 1], fill=COLOURS[cls])
            lines.append(f"{cls} {(x0 + w / 2) / 96} {(y0 + h / 2) / 96} {w / 96} {h / 96}")
        image.save(root / f"s{i}.png")
        (root / f"s{i}.txt").write_text("\n".join(lines) + "\n")


def shapes_datasets(root, count: int, size: int) -> tuple[DetectionData, DetectionData]:
    """`count` shape images through our own CenterNet dataset plugin at `size` px: 75 % training, 25 %
    validation."""
    shapes_source(root / "src", count)
    params = DetectionParams(ShapingParams(size, size, "resize", 3), num_class=3, grid_size=4, kind="centernet")
    train, valid = build_detection_datasets(root / "src", root / "work", params,
                                            [OutputSpec("train", 75), OutputSpec("valid", 25)], True, 0, NAMES,
                                            ConsoleReporter(root / "log", quiet=True))
    return load_detection_csv(train.folder / train.csv_name), load_detection_csv(valid.folder / valid.csv_name)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return root, *shapes_datasets(root, 64, SIZE)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def config(**changes) -> TrainConfig:
    base = {"max_epoch": 10, "batch_size": 8, "learning_rate": 2e-3, "schedule": "cosine", "input_size": SIZE,
            "augmentation": ["flip", "translate", "scale"], "device": "auto"}  # CUDA where present
    return TrainConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def trained(shapes):
    root, train, valid = shapes
    reporter = ConsoleReporter(root / "run", quiet=True)
    torch.set_num_threads(2)
    result = DetectionTrainer(train, valid, NAMES, config(), root / "run", reporter).run()
    return result, reporter


def test_the_detector_learns_the_shapes_and_random_weights_do_not(shapes, trained):
    root, train, valid = shapes
    result, reporter = trained
    truths = truths_of(valid)
    score = detection_metrics(predict_boxes(result.model, valid, SIZE, _device(result.model), reporter), truths,
                              NAMES)["map_50"]
    assert score >= 0.6, reporter.lines[-6:]
    random_model = DetectionTrainer(train, valid, NAMES, config(max_epoch=1), root / "r", reporter)
    untrained = CenterNetDetector(3, pretrained=False).eval()
    assert random_model.size == SIZE
    chance = detection_metrics(predict_boxes(untrained, valid, SIZE, torch.device("cpu"), reporter), truths,
                               NAMES)["map_50"]
    assert chance < 0.2 and score - chance > 0.4
    names = {name for name, _, _ in reporter.metrics}
    assert {"loss", "train_loss", "heat_loss", "size_loss", "offset_loss", "valid_map50", "valid_map"} <= names
    assert [h["epoch"] for h in result.history] == list(range(1, 11))
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_evaluation_files_and_bundle_round_trip(shapes, trained, tmp_path):
    _, _, valid = shapes
    result, reporter = trained
    metrics = evaluate_detector(tmp_path, result.model, valid, NAMES, SIZE, 0.5, _device(result.model), reporter)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["map_50"] == pytest.approx(metrics["map_50"]) and len(saved["per_class"]) == 3
    assert 0 <= saved["map"] <= saved["map_50"] <= 1
    plot = json.loads((tmp_path / "pr_curve.bokeh.json").read_text())
    assert plot["item"]["doc"] and plot["csv"] == "output_result.csv"
    with open(tmp_path / "output_result.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][-2:] == ["y':boxes", "#errors"] and len(rows) == len(valid.images) + 1
    first = (tmp_path / rows[1][-2][2:]).read_text().splitlines()
    assert first and len(first[0].split()) == 6
    save_detector(tmp_path / "model", result.model, NAMES, SIZE, 0.5, {}, {})
    loaded, manifest = load_detector(tmp_path / "model")
    image = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.allclose(loaded(image)[0], result.model.cpu()(image)[0], atol=1e-4)
    assert manifest["class_names"] == NAMES and manifest["threshold"] == 0.5


def test_resume_continues_and_cancel_stops(shapes, tmp_path):
    _, train, valid = shapes
    small = load_detection_csv(train.csv_path)
    small.images, small.boxes, small.rows = small.images[:16], small.boxes[:16], small.rows[:16]
    reporter = ConsoleReporter(tmp_path, quiet=True)
    DetectionTrainer(small, valid, NAMES, config(max_epoch=1), tmp_path, reporter).run()
    again = DetectionTrainer(small, valid, NAMES, config(max_epoch=2), tmp_path, reporter).run(resume=True)
    assert [h["epoch"] for h in again.history] == [1, 2]
    assert any("resuming after epoch 1" in line for line in reporter.lines)
    reporter.stop_requested = True
    with pytest.raises(JobCancelled):
        DetectionTrainer(small, valid, NAMES, config(max_epoch=1), tmp_path / "c", reporter).run()


def test_augmentation_moves_boxes_with_the_pixels():
    image = Image.new("RGB", (100, 100))
    ImageDraw.Draw(image).rectangle([10, 20, 39, 59], fill=(255, 255, 255))
    box = Box(0, 0.25, 0.4, 0.3, 0.4)
    for scale, dx, dy, flip in ((1.2, 0.1, -0.05, True), (0.8, -0.1, 0.1, False)):
        moved = np.asarray(affine_image(image, scale, dx, dy, flip).convert("L")) > 127
        ys, xs = np.nonzero(moved)
        (out,) = affine_boxes([box], scale, dx, dy, flip)
        x0, y0, x1, y1 = out.corners()
        assert abs(xs.min() / 100 - x0) < 0.02 and abs((xs.max() + 1) / 100 - x1) < 0.02
        assert abs(ys.min() / 100 - y0) < 0.02 and abs((ys.max() + 1) / 100 - y1) < 0.02


def _pred(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels)}


def _truth(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}


def test_map_against_hand_computation():
    """Image 1: a hit (0.9) and a duplicate of it (0.8, a false positive); image 2: one true box and no
    prediction (empty); class 1: one box found at IoU 0.6 only."""
    predictions = [_pred([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8, 0.7], [0, 0, 1]),
                   _pred([], [], [])]
    truths = [_truth([[0, 0, 10, 10], [20, 20, 30, 32.5]], [0, 1]), _truth([[50, 50, 60, 60]], [0])]
    # class 0 at any IoU: ranked hit, FP; recall 0.5 after the first with precision 1 -> the 101-point
    # interpolation: precision 1 for recall points 0..0.5 (51 of 101), 0 beyond -> AP = 51/101
    # class 1: IoU = 100/125 = 0.8: a hit at thresholds 0.5..0.8 (7 of 10), AP 1 there, 0 beyond
    precision = coco_precision(predictions, truths, 2)
    assert precision[0, :, 0].mean() == pytest.approx(51 / 101)
    assert precision[:, :, 1].mean(axis=1).tolist() == [1.0] * 7 + [0.0] * 3
    metrics = detection_metrics(predictions, truths, ["a", "b"])
    assert metrics["map_50"] == pytest.approx((51 / 101 + 1) / 2)
    assert metrics["map"] == pytest.approx((51 / 101 + 0.7) / 2)
    assert metrics["per_class"][1] == {"class": "b", "boxes": 1, "ap": pytest.approx(0.7), "ap_50": 1.0}


def test_map_matches_torchmetrics_when_a_coco_backend_is_installed():
    pytest.importorskip("pycocotools")
    from torchmetrics.detection import MeanAveragePrecision

    rng = np.random.default_rng(0)
    predictions, truths = [], []
    for _ in range(8):
        t = rng.uniform(0, 50, (3, 2))
        truths.append(_truth(np.hstack([t, t + rng.uniform(5, 30, (3, 2))]).tolist(), rng.integers(0, 2, 3).tolist()))
        p = t + rng.normal(0, 3, (3, 2))
        predictions.append(_pred(np.hstack([p, p + rng.uniform(5, 30, (3, 2))]).tolist(), rng.uniform(0, 1, 3).tolist(),
                                 rng.integers(0, 2, 3).tolist()))
    metric = MeanAveragePrecision(box_format="xyxy")
    metric.update(predictions, truths)
    expected = metric.compute()
    ours = coco_precision(predictions, truths, 2)
    assert ours.mean(axis=(1, 2)).mean() == pytest.approx(float(expected["map"]), abs=1e-4)


def test_bad_input_is_a_clear_message(tmp_path, shapes):
    _, train, valid = shapes
    (tmp_path / "c.csv").write_text("x:image,y:label\na.png,0\n")
    with pytest.raises(UserError, match="not a detection dataset"):
        load_detection_csv(tmp_path / "c.csv")
    empty = load_detection_csv(train.csv_path)
    empty.boxes = [[] for _ in empty.boxes]
    with pytest.raises(UserError, match="no box at all"):
        DetectionTrainer(empty, valid, NAMES, config(), tmp_path, ConsoleReporter(tmp_path, quiet=True))
    with pytest.raises(UserError, match="class 2, but the run has 2 class names"):
        DetectionTrainer(train, valid, NAMES[:2], config(), tmp_path, ConsoleReporter(tmp_path, quiet=True))


def test_endpoint_answers_easymaker_boxes_in_request_pixels(tmp_path):
    import base64
    import io

    from nnc_web.engine.serving.predictor import read_manifest, spec_for

    torch.manual_seed(0)
    save_detector(tmp_path, CenterNetDetector(2, pretrained=False).eval(), ["cat", "dog"], SIZE, 0.0, {}, {})
    manifest = read_manifest(tmp_path)
    spec = spec_for(manifest)
    predictor = spec.load(tmp_path, manifest, torch.device("cpu"), "torch", None)
    buffer = io.BytesIO()
    Image.new("RGB", (200, 100), (90, 90, 90)).save(buffer, "PNG")
    (answer,) = predictor.predict([{"data": base64.b64encode(buffer.getvalue()).decode()}])
    assert spec.task == "detection" and len(answer) == 100  # threshold 0: every peak
    label, box = next((k, v) for k, v in answer[0].items() if k != "score")
    assert label in ("cat", "dog") and set(box) == {"xmin", "ymin", "xmax", "ymax"}
    assert 0 <= box["xmin"] <= box["xmax"] <= 200 and 0 <= box["ymin"] <= box["ymax"] <= 100
    assert [a["score"] for a in answer] == sorted((a["score"] for a in answer), reverse=True)
