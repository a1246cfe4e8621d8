"""CLIP zero-shot and the CLIP backbone, on a tiny random CLIP (an open_clip config in NNC_MODEL_DIR,
weights imported as a user would): the same code as OpenAI's ViT-B/32, at 32 px and 2 layers."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nnc_web.engine import model_store
from nnc_web.engine.clip import prompts
from nnc_web.engine.clip.architectures import build_clip, model_config, tokenizer
from nnc_web.engine.clip.evaluation import evaluate_zero_shot
from nnc_web.engine.clip.model import load_clip_bundle, load_clip_classifier, save_clip_bundle
from nnc_web.engine.clip.weights import load_clip
from nnc_web.engine.clip.zero_shot import build_zero_shot, encode_classes
from nnc_web.engine.reporting import ConsoleReporter, UserError

# embed_dim stays ViT-B/32's (the model store's feature size); everything else is tiny.
TINY_CLIP = {"embed_dim": 512, "quick_gelu": True,
             "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
             "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
CPU = torch.device("cpu")


def isolate_model_dirs(monkeypatch, root: Path) -> Path:
    """NNC_MODEL_DIR and the Hugging Face hub cache in `root`: nothing of this machine's is used."""
    import huggingface_hub.constants

    models = root / "models"
    monkeypatch.setenv("NNC_MODEL_DIR", str(models))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root / "hf"))
    monkeypatch.delenv("NNC_ALLOW_DOWNLOADS", raising=False)
    models.mkdir(parents=True, exist_ok=True)
    return models


def install_tiny_clip(monkeypatch, root: Path, import_weights: bool = True, seed: int = 0) -> Path:
    """The tiny config as vitb32's architecture, and (optionally) its random weights imported."""
    models = isolate_model_dirs(monkeypatch, root)
    (models / "vitb32.open_clip.json").write_text(json.dumps({"model_cfg": TINY_CLIP}))
    torch.manual_seed(seed)
    source = root / "tiny_clip.pth"
    torch.save(build_clip(model_config("vitb32")).state_dict(), source)
    if import_weights:
        model_store.import_weights("vitb32", source)
    return source


def colour_image(colour: tuple[int, int, int], seed: int, size: int = 40) -> Image.Image:
    noise = np.random.default_rng(seed).integers(-30, 30, (size, size, 3))
    return Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8))


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def write_colour_csv(folder: Path, per_class: int = 3, labelled: bool = True) -> Path:
    """An NNC dataset CSV of colour images (classes red, green, blue in that order)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, (name, colour) in enumerate(COLOURS.items()):
        for i in range(per_class):
            colour_image(colour, 10 * label + i).save(folder / f"{name}_{i}.png")
            rows.append([f"./{name}_{i}.png"] + ([str(label)] if labelled else []))
    path = folder / "valid.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["x:image"] + (["y:label;red;green;blue"] if labelled else []))
        writer.writerows(rows)
    return path


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    install_tiny_clip(monkeypatch, tmp_path)
    return load_clip("vitb32")[0]


def test_classes_are_split_trimmed_and_checked(tmp_path):
    assert prompts.parse_query_text(" cat,dog , a photo of a bird,") == ["cat", "dog", "a photo of a bird"]
    with pytest.raises(UserError, match="class 2 is empty"):
        prompts.parse_query_text("cat,,dog")
    with pytest.raises(UserError, match=r"class 3 \('Cat'\) repeats class 1"):
        prompts.parse_query_text("cat, dog, Cat")
    with pytest.raises(UserError, match=r"class 2 \('golden_retriever'\) repeats class 1"):
        prompts.parse_query_text("Golden Retriever, golden_retriever")
    path = tmp_path / "classes.csv"
    path.write_bytes("\ufeffgolden retriever\n\ntabby cat, sleeping\r\n".encode())
    assert prompts.read_query_file(path) == ["golden retriever", "tabby cat, sleeping"]  # a line is one class
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UserError, match="not UTF-8"):
        prompts.read_query_file(path)
    assert prompts.templates("photo") == ["a photo of a {}."]
    ensemble = prompts.templates("ensemble")
    assert len(ensemble) == 80 and "a bad photo of a {}." in ensemble
    assert prompts.prompts_for("{odd} name", ["a photo of a {}."]) == ["a photo of a {odd} name."]


def test_missing_weights_say_which_file_to_import_and_how(monkeypatch, tmp_path):
    isolate_model_dirs(monkeypatch, tmp_path)
    assert not model_store.is_available("vitb32")
    with pytest.raises(model_store.ModelUnavailable) as caught:
        load_clip("vitb32")
    message = str(caught.value)
    assert "open_clip_model.safetensors" in message and "huggingface.co/timm/vit_base_patch32_clip_224.openai" in message
    assert "python manage.py import_weights vitb32 <that file>" in message
    with pytest.raises(model_store.ModelUnavailable, match="import_weights vitl14"):
        model_store.load_backbone("vitl14")  # the linear-probe backbone says the same


def test_weights_in_the_hugging_face_cache_are_found(monkeypatch, tmp_path):
    source = install_tiny_clip(monkeypatch, tmp_path, import_weights=False)
    snapshot = tmp_path / "hf" / "models--timm--vit_base_patch32_clip_224.openai" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    assert not model_store.is_available("vitb32")
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(source.read_bytes())
    assert model_store.is_available("vitb32")
    clip, _ = load_clip("vitb32")
    assert torch.equal(clip.logit_scale, torch.load(source, weights_only=True)["logit_scale"])


def test_imports_are_checked_strictly(monkeypatch, tmp_path):
    install_tiny_clip(monkeypatch, tmp_path, import_weights=False)
    torch.save({"visual.proj": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(UserError, match="wrong.pth does not fit vitb32: Missing key"):
        model_store.import_weights("vitb32", tmp_path / "wrong.pth")
    (tmp_path / "ViT-B-32.pt").write_bytes(b"PK\x03\x04 a TorchScript archive")
    with pytest.raises(UserError, match="Use open_clip's open_clip_model.safetensors"):
        model_store.import_weights("vitb32", tmp_path / "ViT-B-32.pt")
    assert not model_store.is_available("vitb32")


def test_text_features_follow_the_templates(tiny):
    tokenize = tokenizer(TINY_CLIP)
    plain = encode_classes(tiny, tokenize, ["cat", "dog"], ["{}"], CPU)
    assert plain.shape == (2, 512)
    assert torch.allclose(plain.norm(dim=1), torch.ones(2), atol=1e-6)
    with torch.no_grad():
        direct = F.normalize(tiny.encode_text(tokenize(["cat", "dog"])), dim=-1)
        written = encode_classes(tiny, tokenize, ["a photo of a cat."], ["{}"], CPU)
        pair = F.normalize(tiny.encode_text(tokenize(["a photo of a cat.", "a drawing of a cat."])), dim=-1)
    assert torch.allclose(plain, direct, atol=1e-6)
    assert torch.allclose(encode_classes(tiny, tokenize, ["cat"], ["a photo of a {}."], CPU), written, atol=1e-6)
    ensemble = encode_classes(tiny, tokenize, ["cat"], ["a photo of a {}.", "a drawing of a {}."], CPU, batch_size=1)
    assert torch.allclose(ensemble[0], F.normalize(pair.mean(dim=0), dim=0), atol=1e-6)


def test_the_classifier_is_open_clips_softmax_over_classes(tiny, tmp_path):
    reporter = ConsoleReporter(tmp_path, quiet=True)
    model, manifest = build_zero_shot("vitb32", ["red", "green", "blue"], "none", CPU, reporter)
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        image_logits, _ = tiny.get_logits(images, tokenizer(TINY_CLIP)(["red", "green", "blue"]))
        logits = model(images)
    assert torch.allclose(logits, image_logits, atol=1e-4)
    cosine = F.normalize(tiny.encode_image(images), dim=-1) @ model.text_features.T
    assert torch.allclose(logits, tiny.logit_scale.exp() * cosine, atol=1e-4)  # exp(logit_scale) = 1/0.07
    assert float(model.logit_scale.exp()) == pytest.approx(1 / 0.07, rel=1e-5)
    assert manifest["input_size"] == 32 and manifest["class_names"] == ["red", "green", "blue"]
    assert manifest["normalization"]["mean"] == list(model_store.CLIP_MEAN)


def test_bundle_round_trip_keeps_the_answers_and_no_pickle(tiny, tmp_path):
    model, manifest = build_zero_shot("vitb32", ["cat", "dog", "bird"], "photo", CPU,
                                      ConsoleReporter(tmp_path, quiet=True))
    save_clip_bundle(tmp_path / "bundle", model, manifest)
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == ["manifest.json", "weights.safetensors"]
    (tmp_path / "models" / "vitb32.safetensors").unlink()  # a bundle needs no model-store weights
    loaded, saved = load_clip_classifier(tmp_path / "bundle")
    assert saved["architecture"] == "clip_zero_shot" and saved["num_classes"] == 3
    assert saved["prompts"] == {"template": "photo", "templates": ["a photo of a {}."]}
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    bundle = load_clip_bundle(tmp_path / "bundle")
    pictures = [colour_image((200, 20, 20), 1), colour_image((20, 20, 200), 2).convert("L")]
    probabilities = bundle.predict(pictures, batch_size=1)
    assert probabilities.shape == (2, 3) and bundle.class_names == ["cat", "dog", "bird"]
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-6)
    with torch.no_grad():
        expected = torch.softmax(model(torch.stack([bundle.transform()(p.convert("RGB")) for p in pictures])), 1)
    assert np.allclose(probabilities, expected.numpy(), atol=1e-6)


def test_evaluation_writes_nncs_output_and_metrics_in_query_order(tiny, tmp_path):
    reporter = ConsoleReporter(tmp_path, quiet=True)
    classes = ["Blue", "red", "green", "yellow"]  # another order, another case, one class not in the data
    model, manifest = build_zero_shot("vitb32", classes, "none", CPU, reporter)
    valid = write_colour_csv(tmp_path / "data")
    run = tmp_path / "run"
    run.mkdir()
    metrics = evaluate_zero_shot(run, model, manifest, valid, CPU, reporter, batch_size=4)
    with open(run / "output_result.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["x:image", "y:label;Blue;red;green;yellow", "y'__0", "y'__1", "y'__2", "y'__3"]
    by_name = {Path(r[0]).name.split("_")[0]: r[1] for r in rows[1:]}
    assert by_name == {"red": "1", "green": "2", "blue": "0"}  # y rewritten in the query's order
    assert all(Path(r[0]).is_absolute() and Path(r[0]).is_file() for r in rows[1:])
    scores = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
    labels = [int(r[1]) for r in rows[1:]]
    predicted = scores.argmax(axis=1)
    assert metrics["kind"] == "zero_shot" and metrics["class_names"] == classes
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert np.array(metrics["confusion_matrix"]).sum() == 9 and metrics["per_class"][3]["support"] == 0
    assert json.loads((run / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    # What serving answers for these images is the evaluation's y'.
    served = load_clip_bundle_from(model, manifest, tmp_path).predict([Image.open(r[0]) for r in rows[1:]])
    assert np.abs(served - scores).max() < 1e-5
    # ...and so does an endpoint's predictor, ranked labels per instance.
    import base64

    from nnc_web.engine.serving.predictor import load_predictor

    predictor = load_predictor(tmp_path / "served", "cpu", runtime="torch")
    answers = predictor.predict([{"data": base64.b64encode(Path(r[0]).read_bytes()).decode()} for r in rows[1:]])
    for answer, expected in zip(answers, scores, strict=True):
        by_label = {a["label"]: a["score"] for a in answer}
        assert max(abs(by_label[name] - expected[i]) for i, name in enumerate(classes)) < 1e-5


def load_clip_bundle_from(model, manifest, tmp_path):
    save_clip_bundle(tmp_path / "served", model, manifest)
    return load_clip_bundle(tmp_path / "served", "cpu")


def test_unmatched_or_unlabelled_data_gets_scores_without_metrics(tiny, tmp_path):
    reporter = ConsoleReporter(tmp_path, quiet=True)
    model, manifest = build_zero_shot("vitb32", ["cat", "dog"], "none", CPU, reporter)
    run = tmp_path / "run"
    run.mkdir()
    metrics = evaluate_zero_shot(run, model, manifest, write_colour_csv(tmp_path / "a"), CPU, reporter)
    assert "accuracy" not in metrics and "red, green, blue are not among the query classes" in metrics["note"]
    with open(run / "output_result.csv", newline="") as handle:
        assert next(csv.reader(handle)) == ["x:image", "y:label;red;green;blue", "y'__0", "y'__1"]  # unchanged
    metrics = evaluate_zero_shot(run, model, manifest, write_colour_csv(tmp_path / "b", labelled=False), CPU,
                                 reporter)
    assert "no labels" in metrics["note"]
    with open(run / "output_result.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["x:image", "y'__0", "y'__1"] and len(rows) == 10


def test_image_tower_is_a_linear_probe_backbone(tiny, tmp_path):
    from nnc_web.engine.training.model import TransferClassifier

    tower = model_store.load_backbone("vitb32")
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(tower(images), tiny.encode_image(images), atol=1e-5)
        bigger = F.interpolate(images, size=(64, 64), mode="bilinear", antialias=True)
        assert tower(bigger).shape == (3, 512)  # other sizes are resized to the tower's
    classifier = TransferClassifier("vitb32", num_classes=3)
    assert classifier.features.dim == model_store.get_backbone("vitb32").feature_dim == 512
    assert classifier(images).shape == (3, 3)
    random_tower = model_store.load_backbone("vitb32", pretrained=False)
    assert not torch.allclose(random_tower.visual.proj, tower.visual.proj)


def test_explanations_and_onnx_export_take_the_bundle(tiny, tmp_path):
    import onnxruntime

    from nnc_web.engine.training.bundle import export_onnx, export_torchscript
    from nnc_web.engine.xai.classifier import load_image_classifier

    model, manifest = build_zero_shot("vitb32", ["red", "green"], "none", CPU, ConsoleReporter(tmp_path, quiet=True))
    save_clip_bundle(tmp_path / "bundle", model, manifest)
    explained = load_image_classifier(tmp_path / "bundle", CPU)
    assert explained.class_names == ["red", "green"] and explained.num_classes == 2
    picture = colour_image((200, 30, 30), 3)
    with torch.no_grad():
        assert torch.allclose(explained.model(explained.tensor(picture)),
                              model(load_clip_bundle(tmp_path / "bundle").transform()(picture).unsqueeze(0)), atol=1e-5)
    with pytest.raises(UserError, match="no convolutional layer"):
        explained.layer(None)
    with torch.no_grad():  # attention's fast path, taken without autograd, must be taken in every trace run
        export_torchscript(model, 32, tmp_path / "model.pt")
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(tmp_path / "model.pt"))(images), model(images), atol=1e-5)
    export_onnx(model, 32, tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        assert np.abs(session.run(None, {"image": images.numpy()})[0] - model(images).numpy()).max() < 1e-4
