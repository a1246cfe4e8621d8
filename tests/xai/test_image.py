"""Image explanations on data where the truth is known: squares and discs at random places on textured
noise, a classifier trained on them by the product's Trainer (one for the whole module). Grad-CAM's
default layer, LIME's top segment and SHAP's positive mass must point at the object; Grad-CAM equals
a hand computation; the pictures follow NNC's drawing; bad input gets a clear message."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from nnc_web.engine.analysis.table import CellResolver
from nnc_web.engine.errors import JobCancelled, UserError
from nnc_web.engine.reporting import ConsoleReporter
from nnc_web.engine.training.bundle import save_bundle
from nnc_web.engine.training.data import load_classification_csv
from nnc_web.engine.training.trainer import TrainConfig, Trainer, resolve_device
from nnc_web.engine.xai import memory, pictures
from nnc_web.engine.xai.batch import BatchSpec, explain_table, result_cell, row_class
from nnc_web.engine.xai.classifier import ImageClassifier, load_image_classifier, read_image, to_pixels
from nnc_web.engine.xai.gradcam import check_layer, grad_cam, overlays, upsample
from nnc_web.engine.xai.lime_image import lime_weights, superpixels, top_segments
from nnc_web.engine.xai.shap_image import expected_gradients
from nnc_web.engine.xai.smoothgrad import smoothgrad
from tests.xai.shapes import CLASSES, box_mask, hot_inside, write_shapes

SIZE = 128  # EfficientNet-Lite0's stride-32 layers give 4 x 4 maps


@dataclass
class Shapes:
    classifier: ImageClassifier
    csv: Path
    images: list[Image.Image]
    labels: list[int]
    boxes: list[tuple[int, int, int, int]]
    bundle: Path


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Shapes:
    """EfficientNet-Lite0 (ImageNet, frozen) with a head trained by the Trainer on 160 shapes."""
    root = tmp_path_factory.mktemp("shapes")
    train_csv, _ = write_shapes(root / "train", 160, SIZE, seed=1)
    valid_csv, boxes = write_shapes(root / "valid", 40, SIZE, seed=2)
    train, valid = load_classification_csv(train_csv), load_classification_csv(valid_csv)
    config = TrainConfig(max_epoch=30, batch_size=32, input_size=SIZE, device="auto")
    result = Trainer("efficientnet_lite0", train, valid, config, root / "work",
                     ConsoleReporter(root / "log", quiet=True)).run()
    bundle = root / "model"
    save_bundle(bundle, result.model, "efficientnet_lite0", list(CLASSES), SIZE, {}, {})
    classifier = load_image_classifier(bundle, resolve_device("auto"))
    return Shapes(classifier, valid_csv, [read_image(p) for p in valid.images], valid.labels, boxes, bundle)


def inputs_of(shapes: Shapes, count: int | None = None) -> torch.Tensor:
    return torch.cat([shapes.classifier.tensor(image) for image in shapes.images[:count]])


def hot_rate(shapes: Shapes, layer_name: str) -> float:
    classifier = shapes.classifier
    maps = upsample(grad_cam(classifier.model, classifier.layer(layer_name)[1], inputs_of(shapes), shapes.labels),
                    SIZE)
    return float(np.mean([hot_inside(m, box) for m, box in zip(maps, shapes.boxes, strict=True)]))


# -- faithfulness -----------------------------------------------------------------------------------

def test_the_trained_model_tells_squares_from_discs(shapes):
    predicted = shapes.classifier.predicted_class(inputs_of(shapes))
    assert np.mean(np.array(predicted) == np.array(shapes.labels)) >= 0.9


def test_grad_cam_default_layer_is_hot_on_the_object_and_localises_best(shapes):
    classifier = shapes.classifier
    rates = {name: hot_rate(shapes, name) for name in classifier.layer_names}
    assert classifier.default_layer == "blocks.5"
    assert rates["blocks.5"] >= 0.8, rates  # >= 2x hotter inside the box for >= 80 % of the images
    assert rates["blocks.5"] >= max(rates.values()) - 0.05, rates
    assert rates["conv_head"] <= rates["blocks.5"] / 2, rates  # NNC's rule, the last convolution, is poor


def test_lime_top_segment_overlaps_the_object(shapes):
    classifier = shapes.classifier
    hits = []
    for image, label, box in list(zip(shapes.images, shapes.labels, shapes.boxes, strict=True))[:8]:
        unit = classifier.unit(image)
        segments, _ = superpixels(to_pixels(unit), 20)
        assert segments.max() + 1 >= 10  # SLIC made segments (NNC's settings merge noise into one)
        weights = lime_weights(classifier, unit, segments, label, num_samples=60)
        top = top_segments(weights, 1)[0]
        hits.append(bool((segments == top)[box_mask(SIZE, box)].any()))
    assert np.mean(hits) >= 0.7, hits


def test_shap_positive_mass_is_concentrated_on_the_object(shapes):
    classifier = shapes.classifier
    background = torch.stack([classifier.unit(image) for image in shapes.images[20:40]])
    ratios = []
    for image, label, box in list(zip(shapes.images, shapes.labels, shapes.boxes, strict=True))[:6]:
        values = expected_gradients(classifier, classifier.unit(image), background, label, 20, 20)
        positive = np.clip(values, 0, None)
        inside = box_mask(SIZE, box)
        ratios.append(positive[inside].sum() / positive.sum() / inside.mean())
    assert np.median(ratios) >= 3, ratios  # the box holds >= 3x its share of the area's positive mass


def test_shap_is_seeded_and_smoothgrad_is_hot_on_the_object(shapes):
    classifier = shapes.classifier
    unit, label = classifier.unit(shapes.images[0]), shapes.labels[0]
    background = torch.stack([classifier.unit(i) for i in shapes.images[20:30]])
    first = expected_gradients(classifier, unit, background, label, 4, 4, seed=3)
    assert first.shape == (SIZE, SIZE)
    assert np.array_equal(first, expected_gradients(classifier, unit, background, label, 4, 4, seed=3))
    assert not np.allclose(first, expected_gradients(classifier, unit, background, label, 4, 4, seed=4))
    at_layer = expected_gradients(classifier, unit, background, label, 4, 4, layer=classifier.layer("blocks.4")[1])
    assert at_layer.shape == (SIZE, SIZE) and np.abs(at_layer).max() > 0  # an interim layer, upsampled
    maps = [smoothgrad(classifier, classifier.tensor(i), y, 0.15, 6, 6) for i, y in
            zip(shapes.images[:5], shapes.labels[:5], strict=True)]
    assert np.mean([hot_inside(m, b) for m, b in zip(maps, shapes.boxes[:5], strict=True)]) >= 0.8


# -- Grad-CAM by hand -------------------------------------------------------------------------------

def test_grad_cam_equals_the_hand_computation():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()
    inputs = torch.randn(3, 3, 10, 10)
    targets = [0, 2, 1]
    layer = net[2]
    maps = grad_cam(net, layer, inputs, targets)
    captured = {}
    handle = layer.register_forward_hook(lambda module, args, output: captured.setdefault("a", output))
    scores = net(inputs)
    handle.remove()
    activations = captured["a"]
    for n, target in enumerate(targets):
        gradient = torch.autograd.grad(scores[n, target], activations, retain_graph=True)[0][n]
        alpha = gradient.mean(dim=(1, 2))  # one weight per channel: the mean gradient
        cam = torch.relu((alpha[:, None, None] * activations[n]).sum(dim=0))
        assert cam.max() > 0
        cam = (cam - cam.min()) / (cam.max() - cam.min())
        assert maps[n].shape == (5, 5)
        assert torch.allclose(maps[n], cam.detach(), atol=1e-6)
    up = upsample(maps, 10)
    assert up.shape == (3, 10, 10) and up.dtype == np.float32 and up.min() >= 0 and up.max() <= 1


def test_a_layer_without_a_convolution_is_refused():
    with pytest.raises(UserError, match="Grad-CAM needs a convolutional layer, and head has no convolution"):
        check_layer("head", nn.Linear(4, 2))
    bare = ImageClassifier(nn.Linear(4, 2), {"input_size": 4, "num_classes": 2}, torch.device("cpu"))
    with pytest.raises(UserError, match="no convolutional layer"):
        bare.layer(None)


# -- pictures --------------------------------------------------------------------------------------

def test_jet_follows_nnc_breaks_and_the_overlay_is_half_and_half():
    colours = pictures.jet(np.array([0, 1 / 8, 3 / 8, 5 / 8, 7 / 8, 1.0]))
    assert colours.tolist() == [[0, 0, 128], [0, 0, 255], [0, 255, 255], [255, 255, 0], [255, 0, 0], [128, 0, 0]]
    pixels = np.full((2, 2, 3), 100, dtype=np.uint8)
    cam = np.array([[0.0, 1 / 8], [7 / 8, 1.0]])
    overlay = pictures.gradcam_overlay(pixels, cam)
    assert overlay[0, 0].tolist() == [50, 50, 114] and overlay[1, 0].tolist() == [178, 50, 50]


def test_lime_shap_and_smoothgrad_pictures():
    pixels = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    segments = np.array([[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2)
    kept = pictures.lime_picture(pixels, segments, [1, 2])
    assert (kept[segments == 1] == pixels[segments == 1]).all() and (kept[segments == 0] == 192).all()
    values = np.zeros((4, 4))
    values[0, 0], values[3, 3] = 5.0, -5.0
    shap = pictures.shap_picture(np.full((4, 4, 3), 128, dtype=np.uint8), values).astype(int)
    assert shap[0, 0].tolist() == [255, 13, 87] and shap[3, 3].tolist() == [30, 136, 229]
    assert shap[1, 1].tolist() == [236, 236, 236]  # nothing: the grey image at alpha 0.15 on white
    grey = pictures.smoothgrad_picture(np.linspace(0, 1, 101).reshape(1, 101))
    assert grey[0, 0] == 0 and grey[0, -1] == 255 and grey[0, 50] in (127, 128)


# -- the batch layout, progress, cancelling, bad input ---------------------------------------------

def test_batch_layout_skips_bad_rows_and_reports_progress(shapes, tmp_path):
    rows = shapes.csv.read_text().splitlines()
    odd = Image.new("RGB", (60, 40), (10, 200, 30))
    odd.save(tmp_path / "odd.png")
    (tmp_path / "in.csv").write_text("\n".join([rows[0], *rows[1:4], f"{tmp_path / 'odd.png'},1",
                                                "./images/missing.png,0", f"{rows[1].split(',')[0]},7"]) + "\n")
    for path in (shapes.csv.parent / "images").glob("[0-3].png"):
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / path.name).write_bytes(path.read_bytes())
    reporter = ConsoleReporter(tmp_path / "log", quiet=True)
    output = tmp_path / "gradcam.csv"
    classifier = shapes.classifier
    _, layer = classifier.layer(None)
    done = explain_table(reporter, tmp_path / "in.csv", CellResolver(tmp_path, [tmp_path]), "x", "y", classifier,
                         output, BatchSpec("gradcam", "gradcam_map", 3), lambda items: overlays(classifier, layer, items),
                         max_pixels=10**8)
    assert done == 4 and reporter.last_progress == (6, 6)
    lines = output.read_text().splitlines()
    assert lines[0] == "gradcam,x:image,y:label;square;disc,gradcam_map"
    cells = [line.split(",") for line in lines[1:]]
    assert [c[0] for c in cells] == [result_cell("gradcam", i) for i in range(4)] + ["", ""]
    assert [c[1:3] for c in cells[:3]] == [r.split(",") for r in rows[1:4]]
    assert cells[0][0] == "gradcam/0000/0.png" and cells[0][-1] == "gradcam/0000/0.npy"
    assert Image.open(tmp_path / "gradcam/0000/3.png").size == (SIZE, SIZE)  # the 60 x 40 image, resized
    raw = np.load(tmp_path / "gradcam/0000/0.npy")
    assert raw.dtype == np.float16 and raw.shape == (SIZE, SIZE) and raw.min() >= 0 and 0.9 < raw.max() <= 1
    picture = np.asarray(Image.open(tmp_path / "gradcam/0000/0.png")).astype(int)
    expected = pictures.gradcam_overlay(classifier.pixels(shapes.images[0]), raw.astype(np.float32)).astype(int)
    assert np.abs(picture - expected).max() <= 1  # the picture is the map (float16 rounding aside)
    assert any("odd.png is 60 x 40; the model takes 128 x 128: resized" in line for line in reporter.lines)
    skipped = [line for line in reporter.lines if line.startswith("skipped")]
    assert skipped[0] == "skipped line 6: ./images/missing.png: file not found"
    assert skipped[1] == "skipped line 7: label 7 is not a class of this model (2 classes: 0-1)"


def test_a_stop_request_cancels_lime_between_forward_passes(shapes, tmp_path):
    classifier = shapes.classifier
    reporter = ConsoleReporter(tmp_path, quiet=True)
    unit = classifier.unit(shapes.images[0])
    segments, _ = superpixels(to_pixels(unit), 10)
    seen = []

    def stop_after_first(done: int) -> None:
        seen.append(done)
        reporter.stop_requested = True

    with pytest.raises(JobCancelled):
        lime_weights(classifier, unit, segments, 0, 500, batch_size=8, reporter=reporter, on_samples=stop_after_first)
    assert seen == [8]


def test_lime_batches_give_the_same_weights_as_one_image_per_pass(shapes):
    classifier = shapes.classifier
    unit = classifier.unit(shapes.images[1])
    segments, _ = superpixels(to_pixels(unit), 10)
    batched = lime_weights(classifier, unit, segments, 1, 12, batch_size=4)
    single = lime_weights(classifier, unit, segments, 1, 12, batch_size=1)
    assert np.allclose(batched, single, atol=1e-5) and np.abs(batched).max() > 0


def test_lime_puts_each_distinct_mask_through_the_model_once_and_gets_the_same_weights(shapes):
    classifier = shapes.classifier
    unit = classifier.unit(shapes.images[1])
    segments, _ = superpixels(to_pixels(unit), 6)
    count = int(segments.max()) + 1
    assert 2 <= count <= 6  # at most 64 masks: 200 draws repeat many
    seen = []
    hook = classifier.model.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    try:
        reused = lime_weights(classifier, unit, segments, 0, 200, batch_size=16)
        forwarded, seen[:] = sum(seen), []
        every = lime_weights(classifier, unit, segments, 0, 200, batch_size=16, reuse=False)
    finally:
        hook.remove()
    assert sum(seen) == 200
    assert forwarded <= 2 ** count < 200  # each distinct mask once
    assert np.allclose(reused, every, atol=1e-5) and np.abs(reused).max() > 0


def test_other_models_and_classes_get_clear_messages(shapes, tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"architecture": "tabular_mlp"}))
    with pytest.raises(UserError, match="^Grad-CAM needs an image classifier; this run's model is tabular_mlp$"):
        load_image_classifier(tmp_path, torch.device("cpu"), "Grad-CAM")
    with pytest.raises(UserError, match=r"^class_index 2 is out of range: this model has 2 classes \(0-1\)$"):
        shapes.classifier.check_class(2)
    with pytest.raises(UserError, match="layer 'layer4' is not a layer of this efficientnet_lite0; layers: blocks.3"):
        shapes.classifier.layer("layer4")


def test_the_memory_guard_refuses_what_would_not_fit(monkeypatch):
    device = torch.device("cpu")
    monkeypatch.setattr(memory, "available_bytes", lambda d: 2 * memory.GiB)
    need = memory.batch_bytes(50, 224, 1720, True)
    assert need == 50 * 224 * 224 * 1720 * 2
    with pytest.raises(UserError, match=r"^batch_size 50 at 224 x 224 px needs about 8\.0 GiB of memory, and 2\.0 "
                                        r"GiB are free on cpu: lower batch_size to 9 or less$"):
        memory.check_batch(50, 224, 1720, True, device)
    memory.check_batch(9, 224, 1720, True, device)
    assert memory.fitted_batch(16, 224, 1720, True, device) == 9
    monkeypatch.setattr(memory, "available_bytes", lambda d: 10 * 1024 ** 2)
    with pytest.raises(UserError, match="one image at 224 x 224 px needs about"):
        memory.fitted_batch(16, 224, 1720, True, device)
    with pytest.raises(UserError, match="^out of memory: lower batch_size$"):
        with memory.memory_errors("lower batch_size"):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")


def test_a_rows_class_is_its_label_as_an_index_or_the_largest_of_a_vector(shapes):
    classifier = shapes.classifier
    assert row_class(["a.png", "1", "0.9", "0.1"], [1], classifier) == 1  # NNC's argmax of a scalar: always 0
    assert row_class(["a.png", "0", "0.2", "0.8"], [2, 3], classifier) == 1  # y': the predicted class
    for cells, message in ((["a.png", "1.5"], "label 1.5 is not a whole class index"),
                           (["a.png", "cat"], "label 'cat' is not a class index"),
                           (["a.png", "-1"], r"label -1 is not a class of this model \(2 classes: 0-1\)")):
        with pytest.raises(UserError, match=f"^{message}$"):
            row_class(cells, [1], classifier)
    with pytest.raises(UserError, match="the label has 3 values; the model has 2 classes"):
        row_class(["a.png", "0", "0", "1"], [1, 2, 3], classifier)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_resnet_bundles_explain_through_the_same_interface(backbone, tmp_path):
    """The ResNet-50 built-in and transfer learning on a ResNet save the same bundle: its layers resolve."""
    from nnc_web.engine.training.model import TransferClassifier

    torch.manual_seed(0)
    save_bundle(tmp_path, TransferClassifier(backbone, 3, pretrained=False), backbone, ["a", "b", "c"], 64, {}, {})
    classifier = load_image_classifier(tmp_path, torch.device("cpu"))
    assert classifier.layer_names == ("layer2", "layer3", "layer4") and classifier.default_layer == "layer4"
    name, layer = classifier.layer(None)
    check_layer(name, layer)
    inputs = classifier.tensor(Image.new("RGB", (64, 64), (90, 30, 200)))
    maps = grad_cam(classifier.model, layer, inputs, [2])
    assert maps.shape == (1, 2, 2) and 0 <= float(maps.min()) and float(maps.max()) <= 1


def test_the_explained_input_is_exactly_what_evaluation_feeds_the_model(shapes):
    from nnc_web.engine.training.trainer import transforms_for
    from tests.sample_data import photo

    evaluation = transforms_for("efficientnet_lite0", SIZE, [])
    for image in (shapes.images[0], photo("chelsea"), photo("coffee").convert("L")):
        assert torch.equal(shapes.classifier.tensor(image)[0], evaluation(image.convert("RGB")))
