"""EasyMaker's built-ins through `transformers`: DETR and SegFormer with tiny random-initialised configs
(NNC_TINY_HF_CONFIGS=1, the switch the plugins read; the real weights cannot be fetched here): label
shapes, the loss going down, evaluation files with mAP / mean IoU, bundle round trips, the weights
lookup (NNC_MODEL_DIR, import, the missing-weights message) without any download."""
from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nnc_web.engine import hf_weights
from nnc_web.engine.detection_training.detr import (
    build_detr,
    detr_targets,
    load_detr,
    predict_detr,
    save_detr,
    train_detr,
)
from nnc_web.engine.detection_training.evaluation import evaluate_detector
from nnc_web.engine.model_store import ModelUnavailable
from nnc_web.engine.reporting import ConsoleReporter, UserError
from nnc_web.engine.segmentation_training.evaluation import evaluate_segmenter
from nnc_web.engine.segmentation_training.segformer import (
    build_segformer,
    load_segformer,
    save_segformer,
    segformer_predictor,
    train_segformer,
)
from tests.engine.test_detection_training import NAMES as BOX_NAMES
from tests.engine.test_detection_training import shapes  # noqa: F401 - the module fixture
from tests.engine.test_segmentation_training import NAMES as MASK_NAMES
from tests.engine.test_segmentation_training import masks  # noqa: F401 - the module fixture

SIZE = 64
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def tiny(monkeypatch, tmp_path):
    monkeypatch.setenv(hf_weights.TINY_ENV, "1")
    monkeypatch.setenv("NNC_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache: nothing found there
    torch.set_num_threads(2)


def head(data, count: int):
    """The first rows of a dataset (a few steps per epoch keep the test fast on two cores)."""
    fields = ("rows", "images", "boxes", "masks")
    return dataclasses.replace(data, **{f: getattr(data, f)[:count] for f in fields if hasattr(data, f)})


def reporter(tmp_path) -> ConsoleReporter:
    return ConsoleReporter(tmp_path / "log", quiet=True)


def _b64(path) -> str:
    return base64.b64encode(open(path, "rb").read()).decode()


def test_detr_targets_are_normalised_centre_boxes_and_the_loss_has_detr_parts(tmp_path):
    rows = torch.tensor([[2, 0.1, 0.2, 0.5, 0.6], [0, 0.0, 0.0, 1.0, 0.5]])
    (target, empty) = detr_targets([rows, torch.zeros(0, 5)], CPU)
    assert target["class_labels"].tolist() == [2, 0]
    assert torch.allclose(target["boxes"], torch.tensor([[0.3, 0.4, 0.4, 0.4], [0.5, 0.25, 1.0, 0.5]]))
    assert empty["boxes"].shape == (0, 4) and empty["class_labels"].shape == (0,)
    model = build_detr(BOX_NAMES, pretrained=True, reporter=reporter(tmp_path))  # tiny: no weights needed
    assert model.config.num_labels == 3 and model.config.id2label[1] == BOX_NAMES[1]
    out = model(pixel_values=torch.randn(2, 3, SIZE, SIZE), labels=[target, empty])
    assert out.logits.shape == (2, 10, 4) and out.pred_boxes.shape == (2, 10, 4)  # 10 queries, 3 classes + none
    assert {"loss_ce", "loss_bbox", "loss_giou"} <= set(out.loss_dict) and out.loss.item() > 0


def test_detr_trains_evaluates_and_its_bundle_round_trips(shapes, tmp_path):  # noqa: F811
    train, valid = head(shapes[1], 8), head(shapes[2], 4)
    log = reporter(tmp_path)
    # one batch of all 8 images per epoch: each epoch's loss is the same batch's after one more step
    model, result = train_detr(train, valid, BOX_NAMES, size=SIZE, learning_rate=1e-3, batch_size=8,
                               eval_batch_size=8, epochs=4, logging_steps=2, augmentation=[], seed=0, device=CPU,
                               pretrained=True, workdir=tmp_path / "run", reporter=log)
    steps = [v for name, _, v in log.metrics if name == "loss"]
    assert len(steps) == 4
    assert steps[-1] < steps[0] - 0.05  # DETR's matching loss goes down (slowly: 10 queries, mostly "no object")
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert {"train_loss", "loss_ce", "loss_bbox", "loss_giou", "valid_map50", "valid_map"} <= set(result.history[0])
    assert any(line.startswith("step 2: loss") for line in log.lines)
    metrics = evaluate_detector(tmp_path / "eval", model, valid, BOX_NAMES, SIZE, 0.5, CPU, log, batch_size=8,
                                predict=predict_detr)
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["kind"] == "detection" and 0 <= saved["map_50"] <= 1 and 0 <= saved["map"] <= saved["map_50"] + 1e-9
    assert [c["class"] for c in saved["per_class"]] == BOX_NAMES and metrics["map"] == saved["map"]
    rows = (tmp_path / "eval" / "output_result.csv").read_text().splitlines()
    assert len(rows) == 1 + len(valid.images) and rows[0].endswith("y':boxes,#errors")
    first = (tmp_path / "eval" / "predicted" / "0.txt").read_text().split("\n")[0].split()
    assert len(first) == 6 and all(0 <= float(v) <= 1 for v in first[1:5])  # class cx cy w h score

    save_detr(tmp_path / "model", model, BOX_NAMES, SIZE, 0.5, {"learning_rate": 2e-4}, {"train": 1, "valid": 2})
    loaded, manifest = load_detr(tmp_path / "model")
    assert manifest["architecture"] == "detr_detector" and manifest["class_names"] == BOX_NAMES
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        before, after = model.eval()(pixel_values=images), loaded(pixel_values=images)
    assert torch.allclose(before.logits, after.logits, atol=1e-5)
    assert torch.allclose(before.pred_boxes, after.pred_boxes, atol=1e-5)
    from nnc_web.engine.serving.predictor import load_predictor, task_of

    predictor = load_predictor(tmp_path / "model")
    predictor.manifest["threshold"] = 0.0  # every query, so each box is compared (a tiny DETR scores low)
    served = predictor.predict([{"data": _b64(valid.images[0])}])[0]  # an endpoint's answer
    assert task_of(manifest) == "detection"
    width, height = Image.open(valid.images[0]).size
    evaluated = predict_detr(loaded, dataclasses.replace(valid, images=valid.images[:1], boxes=valid.boxes[:1],
                                                         rows=valid.rows[:1]), SIZE, CPU, log)[0]
    kept = [(b, s, la) for b, s, la in zip(evaluated["boxes"].tolist(), evaluated["scores"].tolist(),
                                            evaluated["labels"].tolist(), strict=True)]
    assert len(served) == len(kept) > 0  # the evaluation's boxes, in the image's pixels
    for answer, (box, score, label) in zip(served, kept, strict=True):
        assert answer["score"] == pytest.approx(score, abs=1e-5)
        (name, corners), = ((k, v) for k, v in answer.items() if k != "score")
        assert name == BOX_NAMES[label]
        assert [corners[k] for k in ("xmin", "ymin", "xmax", "ymax")] == pytest.approx(
            [box[0] * width, box[1] * height, box[2] * width, box[3] * height], abs=0.02)

    resumed_log = reporter(tmp_path)  # the finished run's checkpoint: resume trains no further epoch
    _, again = train_detr(train, valid, BOX_NAMES, size=SIZE, learning_rate=1e-3, batch_size=8, eval_batch_size=8,
                          epochs=4, logging_steps=0, augmentation=[], seed=0, device=CPU, pretrained=True,
                          workdir=tmp_path / "run", reporter=resumed_log, resume=True)
    assert again.history == result.history and not [m for m in resumed_log.metrics if m[0] == "loss"]


def test_segformer_trains_honours_ignore_evaluates_and_round_trips(masks, tmp_path):  # noqa: F811
    train, valid = head(masks[1], 12), head(masks[2], 4)
    log = reporter(tmp_path)
    model = build_segformer(MASK_NAMES, pretrained=True, reporter=log)
    assert model.config.semantic_loss_ignore_index == 255 and model.config.id2label[2] == MASK_NAMES[2]
    images, truth = torch.randn(2, 3, SIZE, SIZE), torch.randint(0, 3, (2, SIZE, SIZE))
    out = model(pixel_values=images, labels=truth)
    assert out.logits.shape == (2, 3, SIZE // 4, SIZE // 4)
    ignored = torch.full_like(truth, 255)
    ignored[:, :8] = truth[:, :8]  # the loss sees only the pixels not marked 255
    only_top = model(pixel_values=images, labels=ignored).loss
    logits = torch.nn.functional.interpolate(out.logits, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    want = torch.nn.functional.cross_entropy(logits[:, :, :8], truth[:, :8])
    assert only_top.item() == pytest.approx(want.item(), rel=1e-4)

    model, result = train_segformer(train, valid, MASK_NAMES, size=SIZE, learning_rate=2e-3, batch_size=4, epochs=3,
                                    logging_steps=0, augmentation=["flip", "scale"], seed=0, device=CPU,
                                    pretrained=True, workdir=tmp_path / "run", reporter=log)
    steps = [v for name, _, v in log.metrics if name == "loss"]
    losses = [r["train_loss"] for r in result.history]
    assert len(steps) == 3 * 3 and losses[2] < 0.9 * losses[0]  # 12 images, batches of 4; the loss goes down
    assert {"train_loss", "valid_mean_iou", "valid_overall_accuracy"} <= set(result.history[-1])
    metrics = evaluate_segmenter(tmp_path / "eval", model, valid, MASK_NAMES, SIZE, CPU, log,
                                 predict=segformer_predictor(4))
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key in ("mean_iou", "mean_accuracy", "overall_accuracy", "per_category_iou", "per_category_accuracy"):
        assert key in saved
    assert saved["kind"] == "segmentation" and np.asarray(saved["confusion_matrix"]).shape == (3, 3)
    assert saved["mean_iou"] == metrics["mean_iou"] and (tmp_path / "eval" / "predicted" / "0.png").exists()

    save_segformer(tmp_path / "model", model, MASK_NAMES, SIZE, {}, {"train": 1, "valid": 2})
    loaded, manifest = load_segformer(tmp_path / "model")
    assert manifest["id2label"] == {"0": "background", "1": "square", "2": "disc"} and manifest["ignore_index"] == 255
    with torch.no_grad():
        assert torch.allclose(model.eval()(pixel_values=images).logits, loaded(pixel_values=images).logits, atol=1e-5)
    from nnc_web.engine.serving.predictor import load_predictor

    mask = load_predictor(tmp_path / "model").predict([{"data": _b64(valid.images[0])}])[0]
    assert len(mask) == 512 and len(mask[0]) == 512 and set(np.unique(np.asarray(mask))) <= set(MASK_NAMES)


def test_segformer_refuses_mask_ids_outside_the_label_map(masks, tmp_path):  # noqa: F811
    _, train, valid = masks
    with pytest.raises(UserError, match="outside the label map"):
        train_segformer(train, valid, MASK_NAMES[:2], size=SIZE, learning_rate=2e-4, batch_size=4, epochs=1,
                        logging_steps=0, augmentation=[], seed=0, device=CPU, pretrained=True,
                        workdir=tmp_path / "run", reporter=reporter(tmp_path))


def test_missing_weights_name_the_import_command_and_imports_are_checked(monkeypatch, tmp_path):
    monkeypatch.delenv(hf_weights.TINY_ENV)
    assert not hf_weights.is_available("detr_resnet50") and not hf_weights.is_available("segformer_b3")
    with pytest.raises(ModelUnavailable) as missing:
        build_detr(BOX_NAMES, pretrained=True, reporter=reporter(tmp_path))
    message = str(missing.value)
    assert "python manage.py import_weights detr_resnet50 <that folder or model.safetensors>" in message
    assert "https://huggingface.co/facebook/detr-resnet-50" in message
    assert "import_weights segformer_b3" in hf_weights.missing_weights_message("segformer_b3")
    assert "nvidia/mit-b3" in hf_weights.missing_weights_message("segformer_b3")

    # A hub-style folder (config.json + model.safetensors) of the tiny SegFormer imports (checked against the
    # tests' tiny reference config), then loads offline as the real files would.
    from transformers import SegformerForSemanticSegmentation

    from nnc_web.engine.segmentation_training.segformer import tiny_config

    SegformerForSemanticSegmentation(tiny_config(["a", "b"])).save_pretrained(tmp_path / "snapshot")
    monkeypatch.setenv(hf_weights.TINY_ENV, "1")
    target = hf_weights.import_hf_weights("segformer_b3", tmp_path / "snapshot")
    monkeypatch.delenv(hf_weights.TINY_ENV)
    assert target == tmp_path / "models" / "segformer_b3" and (target / "model.safetensors").is_file()
    assert hf_weights.weights_folder("segformer_b3") == target
    model = build_segformer(MASK_NAMES, pretrained=True, reporter=reporter(tmp_path))
    assert model.config.num_labels == 3 and model.config.hidden_sizes == [8, 16, 32, 64]  # the imported shape
    from safetensors.torch import load_file

    imported = load_file(str(target / "model.safetensors"))
    # save_pretrained writes the hub's (legacy) key layout; loading renames it: the encoder's weights arrive
    assert "segformer.encoder.patch_embeddings.0.proj.weight" in imported
    assert torch.equal(model.state_dict()["segformer.stages.0.patch_embeddings.proj.weight"],
                       imported["segformer.encoder.patch_embeddings.0.proj.weight"])

    # A file of another model is refused with the reason.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "other" / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="holds a 'bert' model"):
        hf_weights.import_hf_weights("segformer_b3", tmp_path / "other")
    with pytest.raises(UserError, match="is not|are not detr_resnet50 weights: .* tensors missing"):
        hf_weights.import_hf_weights("detr_resnet50", target / "model.safetensors")


def _saved(model_class, config, folder):
    model_class(config).save_pretrained(folder)
    return folder


def _resized_segformer(hidden_sizes: list[int]):
    from nnc_web.engine.segmentation_training.segformer import tiny_config

    config = tiny_config(["a", "b"])
    config.hidden_sizes = hidden_sizes
    return config


def test_weights_of_another_size_are_refused_without_server_paths(tmp_path, monkeypatch):
    """The tiny reference stands for the hub model: a checkpoint of the same family with other widths (as a
    SegFormer-B0 file for segformer_b3) is refused, by import_weights and by a run's load alike."""
    from transformers import DetrForObjectDetection, SegformerForSemanticSegmentation

    from nnc_web.engine.detection_training.detr import tiny_config as tiny_detr

    wrong = _saved(SegformerForSemanticSegmentation, _resized_segformer([16, 32, 64, 128]), tmp_path / "mit-b0")
    for attempt in (lambda: hf_weights.import_hf_weights("segformer_b3", wrong),
                    lambda: hf_weights.import_hf_weights("segformer_b3", wrong / "model.safetensors"),
                    lambda: hf_weights.load_pretrained(SegformerForSemanticSegmentation, "segformer_b3", wrong,
                                                       **{"hidden_sizes": [8, 16, 32, 64]})):
        with pytest.raises(UserError) as refused:
            attempt()
        message = str(refused.value)
        assert "is not segformer_b3 weights" in message or "are not segformer_b3 weights" in message
        count = int(message.split(": ")[1].split(" tensors")[0])
        assert count >= 50, message  # every encoder tensor of stages 1-4 (the decode head is replaced anyway)
        assert "have other shapes (e.g. segformer." in message and "[16] instead of [8]" in message
        assert str(tmp_path) not in message and "/" not in message.split("; give")[0]
    assert not hf_weights.is_available("segformer_b3")

    right = _saved(SegformerForSemanticSegmentation, _resized_segformer([8, 16, 32, 64]), tmp_path / "mit-b3")
    assert hf_weights.import_hf_weights("segformer_b3", right).name == "segformer_b3"
    assert hf_weights.is_available("segformer_b3")

    detr = tiny_detr(["a", "b"])
    wide = tiny_detr(["a", "b"])
    wide.d_model, wide.encoder_ffn_dim = 64, 128
    with pytest.raises(UserError, match=r"not detr_resnet50 weights: \d+ tensors have other shapes"):
        hf_weights.import_hf_weights("detr_resnet50", _saved(DetrForObjectDetection, wide, tmp_path / "detr-wide"))
    # DETR's class head is replaced: a checkpoint with another class count still loads
    other_classes = tiny_detr(["a", "b", "c", "d", "e"])
    assert other_classes.num_labels != detr.num_labels
    imported = hf_weights.import_hf_weights("detr_resnet50", _saved(DetrForObjectDetection, other_classes,
                                                                    tmp_path / "detr"))
    loaded = hf_weights.load_pretrained(DetrForObjectDetection, "detr_resnet50", imported,
                                        **{"num_labels": 3, "use_pretrained_backbone": False})
    assert loaded.class_labels_classifier.out_features == 4

    # transformers' own errors come back without the folder's path
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text(json.dumps({"model_type": "segformer"}))
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError) as broken:
        hf_weights.import_hf_weights("segformer_b3", tmp_path / "broken")
    assert "do not load into segformer_b3" in str(broken.value) and str(tmp_path) not in str(broken.value)
    assert hf_weights.strip_paths("no file at '/srv/nnc/models/x/model.bin' (see https://hf.co/a/b)") == (
        "no file at 'model.bin' (see https://hf.co/a/b)")
    (tmp_path / "pickled").mkdir()  # a foreign pickle is a message too, not the command's traceback
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(UserError, match="do not load into segformer_b3"):
        hf_weights.import_hf_weights("segformer_b3", tmp_path / "pickled" / "pytorch_model.bin")
    monkeypatch.chdir(right)  # `import_weights segformer_b3 .` from inside the downloaded folder
    assert hf_weights.import_hf_weights("segformer_b3", Path(".")).name == "segformer_b3"


def test_a_cancel_stops_segformer_within_the_first_batch(masks, tmp_path):  # noqa: F811
    from nnc_web.engine.reporting import JobCancelled

    log = reporter(tmp_path)
    log.stop_requested = True
    with pytest.raises(JobCancelled):
        train_segformer(head(masks[1], 4), head(masks[2], 4), MASK_NAMES, size=SIZE, learning_rate=2e-4,
                        batch_size=4, epochs=3, logging_steps=0, augmentation=[], seed=0, device=CPU,
                        pretrained=True, workdir=tmp_path / "run", reporter=log)
    assert not (tmp_path / "run" / "checkpoint.pt").exists() and not [m for m in log.metrics if m[0] == "loss"]


SMALL = 32  # the exports trace and convert whole forward passes: the smallest input both models take


@pytest.mark.parametrize("which", ["detr", "segformer"])
def test_detr_and_segformer_bundles_export_to_torchscript_and_onnx(which, tmp_path):
    """The exports answer as the eager model: DETR's logits and boxes, SegFormer's logits at the input's size,
    for a batch of another size than the trace's."""
    import onnxruntime

    from nnc_web.engine import exports

    if which == "detr":
        model = build_detr(BOX_NAMES, pretrained=True, reporter=reporter(tmp_path))
        save_detr(tmp_path / "model", model, BOX_NAMES, SMALL, 0.5, {}, {})
        names = ("logits", "pred_boxes")
    else:
        model = build_segformer(MASK_NAMES, pretrained=True, reporter=reporter(tmp_path))
        save_segformer(tmp_path / "model", model, MASK_NAMES, SMALL, {}, {})
        names = ("logits",)
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert exports.exportable(manifest["architecture"])
    images = torch.rand(3, 3, SMALL, SMALL, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model.eval()(pixel_values=images)
    if which == "detr":
        want = [out.logits, out.pred_boxes]
        assert want[0].shape == (3, 10, len(BOX_NAMES) + 1) and want[1].shape == (3, 10, 4)
    else:
        want = [torch.nn.functional.interpolate(out.logits, size=(SMALL, SMALL), mode="bilinear", align_corners=False)]
        assert want[0].shape == (3, len(MASK_NAMES), SMALL, SMALL)

    session = onnxruntime.InferenceSession(str(exports.export_bundle(tmp_path / "model", "onnx", tmp_path / "m.onnx")),
                                           providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(names) and session.get_inputs()[0].name == "image"
    for expected, got in zip(want, session.run(None, {"image": images.numpy()}), strict=True):
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=1e-3)
    traced = torch.jit.load(str(exports.export_bundle(tmp_path / "model", "torchscript", tmp_path / "m.pt")))
    with torch.no_grad():
        again = traced(images)
    again = [again] if isinstance(again, torch.Tensor) else list(again)
    for expected, got in zip(want, again, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-3)
