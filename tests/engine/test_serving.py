"""Serving without Django: an endpoint's answer equals the evaluation's y' for the same image or row
(classifier on both runtimes, anomaly score and heat map, tabular classifier and regressor), bad
instances are named, requests that arrive together share one forward pass, the cache is bounded and
reloads a changed bundle, and other architectures plug in through the registry."""
from __future__ import annotations

import base64
import csv
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from nnc_web.engine.classification_dataset import OutputSpec, ShapingParams, build_classification_datasets
from nnc_web.engine.reporting import ConsoleReporter
from nnc_web.engine.serving.batcher import Call, answer_calls
from nnc_web.engine.serving.cache import ModelCache
from nnc_web.engine.serving.image import ImageClassifierPredictor
from nnc_web.engine.serving.instances import Limits, Parameters, RequestError
from nnc_web.engine.serving.predictor import (
    check_instances,
    load_predictor,
    read_manifest,
    register_predictor,
)
from nnc_web.engine.training.bundle import save_bundle
from nnc_web.engine.training.data import load_classification_csv
from nnc_web.engine.training.evaluation import evaluate_into
from nnc_web.engine.training.trainer import TrainConfig, Trainer
from tests.sample_data import digit_images, write_texture_set

SIZE = 32


def b64(path_or_bytes) -> str:
    raw = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return base64.b64encode(raw).decode()


def output_scores(path: Path, prefix: str = "y'__") -> np.ndarray:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    columns = [i for i, c in enumerate(rows[0]) if c.startswith(prefix) or c == prefix]
    return np.array([[float(row[i]) for i in columns] for row in rows[1:]])


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A transfer-learning run on real digits (3 classes), evaluated like the plugin does."""
    root = tmp_path_factory.mktemp("classifier")
    for label, images in digit_images(12, 3, size=SIZE).items():
        (root / "src" / label).mkdir(parents=True)
        for i, image in enumerate(images):
            image.save(root / "src" / label / f"{i}.png")
    reporter = ConsoleReporter(root / "log", quiet=True)
    train, valid = build_classification_datasets(root / "src", root / "data", ShapingParams(SIZE, SIZE, "resize", 3),
                                                 [OutputSpec("train", 75), OutputSpec("valid", 25)], True, 0, reporter)
    train = load_classification_csv(train.folder / train.csv_name)
    valid = load_classification_csv(valid.folder / valid.csv_name)
    trainer = Trainer("efficientnet_lite0", train, valid, TrainConfig(max_epoch=2, input_size=SIZE), root / "run",
                      reporter)
    result = trainer.run()
    evaluate_into(root / "run", result.model, "efficientnet_lite0", SIZE, valid, torch.device("cpu"), reporter)
    save_bundle(root / "run" / "model", result.model, "efficientnet_lite0", train.class_names, SIZE, {}, {})
    return {"bundle": root / "run" / "model", "valid": valid, "scores": output_scores(root / "run" / "output_result.csv"),
            "onnx": root / "onnx"}


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_classifier_answers_equal_the_evaluation(classifier, runtime):
    predictor = load_predictor(classifier["bundle"], "cpu", runtime, classifier["onnx"])
    assert predictor.runtime == runtime
    valid = classifier["valid"]
    answers = predictor.predict([{"data": b64(p)} for p in valid.images])
    assert len(answers) == len(valid.images) == len(classifier["scores"])
    for answer, expected in zip(answers, classifier["scores"], strict=True):
        by_label = {a["label"]: a["score"] for a in answer}
        assert list(by_label) == [valid.class_names[i] for i in np.argsort(-expected, kind="stable")]  # ranked
        np.testing.assert_allclose([by_label[name] for name in valid.class_names], expected, atol=1e-5)
        assert sum(by_label.values()) == pytest.approx(1.0, abs=1e-5)
    top = predictor.predict([{"data": b64(valid.images[0])}], Parameters(top_k=1))[0]
    assert len(top) == 1 and top[0]["label"] == answers[0][0]["label"]
    assert top[0]["score"] == pytest.approx(answers[0][0]["score"], abs=1e-5)


def test_auto_runtime_keeps_the_faster_of_two_measurements(classifier):
    predictor = load_predictor(classifier["bundle"], "cpu", "auto", classifier["onnx"])
    report = predictor.runtime_report
    faster = "onnxruntime" if report["onnxruntime_ms"] < report["torch_ms"] else "torch"
    assert predictor.runtime == report["runtime"] == faster
    assert report["max_difference"] < 1e-4


def crafted_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with almost no pixel data (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def png_bytes(size=(20, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 30, 200)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("body, field, words", [
    ({}, "instances", "required"),
    ({"instances": []}, "instances", "is empty"),
    ({"instances": [{"data": "x"}] * 65}, "instances", "at most 64"),
    ({"instances": ["abc"]}, "instances[0]", "must be an object"),
    ({"instances": [{"image": "abc"}]}, "instances[0].data", "required"),
    ({"instances": [{"data": "not base64 at all!"}]}, "instances[0].data", "not valid base64"),
    ({"instances": [{"data": b64(b"plain text, no image")}]}, "instances[0].data", "not an image"),
    ({"instances": [{"data": b64(png_bytes())}, {"data": b64(crafted_png(30000, 30000))}]}, "instances[1].data",
     "900 megapixels"),
    ({"instances": [{"data": b64(png_bytes())}], "parameters": {"top_k": 0}}, "parameters.top_k", "at least 1"),
    ({"instances": [{"data": b64(png_bytes())}], "parameters": {"heatmap": True}}, "parameters.heatmap", "anomaly"),
])
def test_bad_image_requests_name_the_field(classifier, body, field, words):
    manifest = read_manifest(classifier["bundle"])
    with pytest.raises(RequestError) as raised:
        check_instances(body, manifest, Limits())
    assert list(raised.value.errors) == [field] and words in raised.value.errors[field][0]
    assert raised.value.detail.startswith(field)


@pytest.fixture(scope="module")
def torch_classifier(classifier):
    return load_predictor(classifier["bundle"], "cpu", "torch")


def test_requests_that_arrive_together_share_one_forward_pass(classifier, torch_classifier):
    cache = ModelCache(lambda folder: torch_classifier if folder == classifier["bundle"] else load_predictor(folder))
    images = [{"data": b64(p)} for p in classifier["valid"].images[:5]]
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(noise, "PNG")
    damaged = {"data": b64(noise.getvalue()[:2000])}  # a real header, the pixel data cut off
    calls = [Call("a", str(classifier["bundle"]), images[:2], endpoint=1),
             Call("b", str(classifier["bundle"]), [images[2], damaged], endpoint=1),
             Call("c", str(classifier["bundle"]), images[2:5], endpoint=2),
             Call("d", "/no/such/bundle", images[:1], endpoint=3)]
    answers, forwards = answer_calls(calls, cache)
    assert [a.id for a in answers] == ["a", "b", "c", "d"]
    assert [a.status for a in answers] == [200, 400, 200, 409]
    assert "instances[1].data" in answers[1].body["errors"] and "damaged" in answers[1].body["detail"]
    assert "cannot be loaded" in answers[3].body["detail"]
    assert len(forwards) == 1 and forwards[0].size == 5 and forwards[0].endpoints == {1: 2, 2: 3}
    alone = torch_classifier.predict(images[:5])
    together = answers[0].body["predictions"] + answers[2].body["predictions"]
    for one, other in zip(alone, together, strict=True):
        assert [a["label"] for a in one] == [a["label"] for a in other]
        np.testing.assert_allclose([a["score"] for a in one], [a["score"] for a in other], atol=1e-5)
    assert cache.loads == 1


class ManifestNames:
    """A stand-in predictor for the cache's bookkeeping: what the bundle's manifest said when loaded."""

    def __init__(self, folder: Path) -> None:
        self.class_names = read_manifest(folder)["class_names"]


def test_cache_is_bounded_and_reloads_a_changed_bundle(tmp_path):
    import time

    copies = []
    for name in ("one", "two", "three"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"class_names": [name]}))
        (tmp_path / name / "weights.safetensors").write_bytes(b"weights")
        copies.append(tmp_path / name)
    cache = ModelCache(ManifestNames, capacity=2)
    first = cache.get(copies[0])
    assert cache.get(copies[0]) is first and cache.loads == 1
    cache.get(copies[1])
    cache.get(copies[0])  # most recently used: copies[1] goes first
    cache.get(copies[2])
    assert cache.held() == [copies[0], copies[2]] and cache.loads == 3
    time.sleep(0.01)
    (copies[0] / "manifest.json").write_text(json.dumps({"class_names": ["changed"]}))
    reloaded = cache.get(copies[0])
    assert reloaded is not first and reloaded.class_names == ["changed"] and cache.loads == 4
    assert cache.get(copies[0]) is reloaded and cache.loads == 4


def test_another_architecture_plugs_in_through_the_registry(tmp_path):
    """What a CLIP (or any) image classifier does to be served: register a loader that builds an
    ImageClassifierPredictor from its model and its evaluation transform."""
    from torchvision.transforms import v2

    class Brightness(nn.Module):  # class 1 when the image is bright
        def forward(self, x):
            mean = x.mean(dim=(1, 2, 3)) - 0.5
            return torch.stack([-mean * 10, mean * 10], dim=1)

    transform = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Resize((8, 8), antialias=True)])
    register_predictor("test_brightness", "image", lambda folder, manifest, device, runtime, onnx_dir:
                       ImageClassifierPredictor(Brightness(), transform, manifest["class_names"], device, 8,
                                                "test_brightness", runtime=runtime, onnx_dir=onnx_dir))
    (tmp_path / "manifest.json").write_text(json.dumps({"architecture": "test_brightness",
                                                         "class_names": ["dark", "bright"]}))
    predictor = load_predictor(tmp_path, "cpu", "auto", tmp_path / "onnx")
    dark, bright = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (16, 16), (10, 10, 10)).save(dark, "PNG")
    Image.new("RGB", (16, 16), (250, 250, 250)).save(bright, "PNG")
    answers = predictor.predict([{"data": b64(dark.getvalue())}, {"data": b64(bright.getvalue())}])
    assert [a[0]["label"] for a in answers] == ["dark", "bright"]
    assert predictor.runtime in ("torch", "onnxruntime")


@pytest.fixture(scope="module")
def anomaly_run(tmp_path_factory):
    from nnc_web.engine.anomaly.bundle import save_anomaly_bundle
    from nnc_web.engine.anomaly.data import AnomalyData
    from nnc_web.engine.anomaly.evaluation import evaluate_anomaly
    from nnc_web.engine.anomaly.padim import Padim

    root = tmp_path_factory.mktemp("anomaly")
    files = write_texture_set(root / "images", train=8, good=4, bad=4, size=64)
    reporter = ConsoleReporter(root / "log", quiet=True)
    model = Padim("efficientnet_lite0", "1/16", input_size=64)
    model.fit(files["train"], reporter)
    rows = [[str(p), str(label)] for p, label in zip(files["test"], files["labels"], strict=True)]
    data = AnomalyData(root / "valid.csv", ["x:image", "y:label;normal;anomalous"], rows, files["test"],
                       files["labels"], None)
    metrics = evaluate_anomaly(model, data, root / "run", reporter)
    save_anomaly_bundle(root / "run" / "model", model, {"threshold": metrics["threshold"],
                                                         "map_range": metrics["map_range"]})
    return {"bundle": root / "run" / "model", "images": files["test"], "run": root / "run",
            "threshold": metrics["threshold"]}


def test_anomaly_answers_equal_the_evaluation_with_its_heat_maps(anomaly_run):
    predictor = load_predictor(anomaly_run["bundle"])
    expected = output_scores(anomaly_run["run"] / "output_result.csv", "y'")[:, 0]
    answers = predictor.predict([{"data": b64(p)} for p in anomaly_run["images"]], Parameters(heatmap=True))
    np.testing.assert_allclose([a["score"] for a in answers], expected, rtol=1e-5)
    assert [a["anomalous"] for a in answers] == [bool(s >= anomaly_run["threshold"]) for s in expected]
    assert all(a["threshold"] == anomaly_run["threshold"] for a in answers)
    assert any(a["anomalous"] for a in answers) and not all(a["anomalous"] for a in answers)
    for index, answer in enumerate(answers):
        drawn = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["heatmap"]))), dtype=int)
        saved = np.asarray(Image.open(anomaly_run["run"] / "heatmaps" / f"{index:06d}.png"), dtype=int)
        assert drawn.shape == saved.shape == (64, 64, 3) and np.abs(drawn - saved).max() <= 1
    plain = predictor.predict([{"data": b64(anomaly_run["images"][0])}])[0]
    assert set(plain) == {"score", "anomalous", "threshold"}


@pytest.fixture(scope="module")
def tabular_runs(tmp_path_factory):
    """Wine (scikit-learn's real data) with a made-up categorical column, encoded by the Tabular plugin's
    code, as a classifier and as a regressor (alcohol)."""
    from sklearn.datasets import load_wine

    from nnc_web.engine.tabular import SCHEMA_FILE, TabularOptions, encode
    from nnc_web.engine.training.tabular_mlp import (
        load_tabular_csv,
        predict_tabular,
        save_tabular_bundle,
        train_tabular,
        write_tabular_output,
    )

    root = tmp_path_factory.mktemp("tabular")
    wine = load_wine(as_frame=True).frame.iloc[::3].reset_index(drop=True)
    frame = wine[["alcohol", "malic_acid", "color_intensity", "proline", "target"]].astype(str)
    frame["cellar"] = ["north", "south", "east"] * (len(frame) // 3) + ["north"] * (len(frame) % 3)
    runs = {}
    for task, target in (("classification", "target"), ("regression", "alcohol")):
        header, rows, schema = encode(frame, TabularOptions(target=target, task=task), ConsoleReporter(root, quiet=True))
        folder = root / task
        folder.mkdir()
        with open(folder / "data.csv", "w", newline="") as handle:
            csv.writer(handle).writerows([header, *rows])
        (folder / SCHEMA_FILE).write_text(json.dumps(schema))
        data = load_tabular_csv(folder / "data.csv")
        result = train_tabular(data, data, ConsoleReporter(root, quiet=True), max_epoch=3)
        write_tabular_output(folder / "output_result.csv", data, predict_tabular(result.model, data))
        save_tabular_bundle(folder / "model", result.model, data, {"hidden": 64, "layers": 2, "dropout": 0.1})
        runs[task] = {"folder": folder, "data": data, "frame": frame.drop(columns=[target])}
    return runs


def test_tabular_classifier_answers_equal_the_evaluation_from_either_column_form(tabular_runs):
    run = tabular_runs["classification"]
    predictor = load_predictor(run["folder"] / "model", "cpu", "auto", run["folder"] / "onnx")
    expected = output_scores(run["folder"] / "output_result.csv")
    original = [{k: (float(v) if k != "cellar" else v) for k, v in row.items()} for row in run["frame"].to_dict("records")]
    labels = [parse.split(":", 1)[1] for parse in run["data"].header if parse.startswith("x__")]
    encoded = [dict(zip(labels, (float(v) for v in values), strict=True)) for values in run["data"].x]
    names = run["data"].class_names
    for instances in (original, encoded):
        for answer, row in zip(predictor.predict(instances), expected, strict=True):
            by_label = {a["label"]: a["score"] for a in answer}
            np.testing.assert_allclose([by_label[n] for n in names], row, atol=1e-5)
    assert "cellar=north" in labels


def test_tabular_regressor_answers_the_value(tabular_runs):
    run = tabular_runs["regression"]
    predictor = load_predictor(run["folder"] / "model", "cpu", "torch")
    expected = output_scores(run["folder"] / "output_result.csv", "y'")[:, 0]
    instances = [{k: (float(v) if k != "cellar" else v) for k, v in row.items()} for row in run["frame"].to_dict("records")]
    np.testing.assert_allclose(predictor.predict(instances), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("instance, field, words", [
    ({"malic_acid": 1, "color_intensity": 2, "proline": 3, "cellar": "north"}, "instances[0].alcohol", "required"),
    ({"alcohol": "strong", "malic_acid": 1, "color_intensity": 2, "proline": 3, "cellar": "north"},
     "instances[0].alcohol", "must be a number"),
    ({"alcohol": 13, "malic_acid": 1, "color_intensity": 2, "proline": 3, "cellar": "west"},
     "instances[0].cellar", "unknown category 'west'"),
    ({"alcohol": 13, "malic_acid": 1, "color_intensity": 2, "proline": 3, "cellar": "north", "year": 1},
     "instances[0].year", "not an input column"),
    ({"alcohol": float("inf"), "malic_acid": 1, "color_intensity": 2, "proline": 3, "cellar": "north"},
     "instances[0].alcohol", "finite"),
])
def test_bad_tabular_instances_name_the_column(tabular_runs, instance, field, words):
    manifest = read_manifest(tabular_runs["classification"]["folder"] / "model")
    with pytest.raises(RequestError) as raised:
        check_instances({"instances": [instance]}, manifest, Limits())
    assert list(raised.value.errors) == [field] and words in raised.value.errors[field][0]


def test_unknown_architectures_are_refused_clearly(tmp_path):
    from nnc_web.engine.errors import UserError

    (tmp_path / "manifest.json").write_text(json.dumps({"architecture": "yolo_v9"}))
    with pytest.raises(UserError, match="'yolo_v9' cannot be served yet"):
        load_predictor(tmp_path)
    with pytest.raises(UserError, match="no trained model"):
        load_predictor(tmp_path / "missing")


def parse_config(text: str) -> dict:
    """The fields of a config.pbtxt this export writes (names, dims, batching)."""
    import re

    def dims(block: str) -> list[int]:
        return [int(d) for d in re.search(r"dims: \[([^\]]*)\]", block).group(1).split(",")]

    inputs, outputs = re.search(r"input \[(.*?)\n\]", text, re.S).group(1), re.search(r"output \[(.*?)\n\]", text, re.S).group(1)
    return {"name": re.search(r'^name: "([^"]+)"', text, re.M).group(1),
            "platform": re.search(r'platform: "([^"]+)"', text).group(1),
            "max_batch_size": int(re.search(r"max_batch_size: (\d+)", text).group(1)),
            "input": (re.search(r'name: "([^"]+)"', inputs).group(1), dims(inputs)),
            "output": (re.search(r'name: "([^"]+)"', outputs).group(1), dims(outputs)),
            "dynamic_batching": "dynamic_batching" in text, "labels": "label_filename" in outputs}


def onnx_signature(path: Path) -> dict:
    import onnx

    graph = onnx.load(str(path)).graph

    def shape(value) -> list:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return {"input": (graph.input[0].name, shape(graph.input[0])), "output": (graph.output[0].name, shape(graph.output[0]))}


def test_triton_repository_of_a_classifier_matches_the_bundle(classifier, torch_classifier, tmp_path):
    import onnxruntime
    from torchvision.transforms import v2

    from nnc_web.engine.serving.export import export_repository

    export_repository(classifier["bundle"], tmp_path, "digits")
    config = parse_config((tmp_path / "digits" / "config.pbtxt").read_text())
    signature = onnx_signature(tmp_path / "digits" / "1" / "model.onnx")
    assert config["name"] == "digits" and config["platform"] == "onnxruntime_onnx" and config["dynamic_batching"]
    assert config["input"] == (signature["input"][0], signature["input"][1][1:]) == ("image", [3, SIZE, SIZE])
    assert config["output"] == (signature["output"][0], signature["output"][1][1:]) == ("probabilities", [3])
    assert isinstance(signature["input"][1][0], str) and config["max_batch_size"] >= 8  # a dynamic batch axis
    assert (tmp_path / "digits" / "labels.txt").read_text().splitlines() == classifier["valid"].class_names
    assert config["labels"] and "[0, 1]" in (tmp_path / "README.md").read_text()
    # A client's preprocessing, as the README says: resize, scale to [0, 1]; the graph normalises.
    pixels = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Resize((SIZE, SIZE), antialias=True)])
    batch = torch.stack([pixels(Image.open(p).convert("RGB")) for p in classifier["valid"].images]).numpy()
    session = onnxruntime.InferenceSession(str(tmp_path / "digits" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    probabilities = session.run(["probabilities"], {"image": batch})[0]
    np.testing.assert_allclose(probabilities, classifier["scores"], atol=1e-5)


def test_triton_repository_of_a_tabular_model_and_no_repository_for_anomaly_models(tabular_runs, anomaly_run, tmp_path):
    import onnxruntime

    from nnc_web.engine.errors import UserError
    from nnc_web.engine.serving.export import export_repository

    for task, output in (("classification", "probabilities"), ("regression", "value")):
        run = tabular_runs[task]
        export_repository(run["folder"] / "model", tmp_path / task, "wine")
        config = parse_config((tmp_path / task / "wine" / "config.pbtxt").read_text())
        signature = onnx_signature(tmp_path / task / "wine" / "1" / "model.onnx")
        inputs = run["data"].x.shape[1]
        assert config["input"] == (signature["input"][0], signature["input"][1][1:]) == ("features", [inputs])
        width = len(run["data"].class_names) if task == "classification" else 1
        assert config["output"] == (signature["output"][0], signature["output"][1][1:]) == (output, [width])
        assert config["labels"] == (task == "classification")
        session = onnxruntime.InferenceSession(str(tmp_path / task / "wine" / "1" / "model.onnx"),
                                               providers=["CPUExecutionProvider"])
        got = session.run(None, {"features": run["data"].x})[0]
        np.testing.assert_allclose(got, output_scores(run["folder"] / "output_result.csv",
                                                      "y'__" if task == "classification" else "y'"), atol=1e-5, rtol=1e-5)
    with pytest.raises(UserError, match="does not export"):
        export_repository(anomaly_run["bundle"], tmp_path / "anomaly", "brick")
    with pytest.raises(UserError, match="model name"):
        export_repository(tabular_runs["regression"]["folder"] / "model", tmp_path / "bad", "no spaces/here")


def test_the_web_sides_table_of_builtin_predictors_matches_their_modules():
    """The web process checks requests from `BUILTINS` without importing the predictors' modules (torch);
    each module, once imported, registers the same inputs, task and check for its architectures."""
    from nnc_web.engine.serving import predictor

    for architecture, (inputs, task, check, _) in predictor.BUILTINS.items():
        predictor.builtin_module(architecture)
        spec = predictor.PREDICTORS[architecture]
        assert (spec.inputs, spec.task, spec.check) == (inputs, task, check), architecture
    served = {a for a, spec in predictor.PREDICTORS.items() if spec.load.__module__.startswith("nnc_web.engine.serving")}
    assert served == set(predictor.BUILTINS)  # no built-in module registers an architecture the table lacks
