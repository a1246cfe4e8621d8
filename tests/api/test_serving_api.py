"""Endpoints through the API (the model server in-process instead of behind Redis): created from a run,
answers equal to the evaluation's y', tokens made and revoked, stop / start / delete, statistics, every
bad request a 4xx in the API's error shape, throttling per token, and the OpenAPI schema."""
from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nnc_web.engine.training.bundle import save_bundle
from nnc_web.engine.training.model import TransferClassifier
from nnc_web.jobs.services import run_job
from nnc_web.projects.models import Project, Run
from nnc_web.serving import services, throttle
from nnc_web.serving.inline import InlineTransport
from nnc_web.serving.models import Endpoint, EndpointStats
from tests.api.helpers import digits_project
from tests.engine.test_serving import anomaly_run, tabular_runs  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def random_bundle(tmp_path_factory) -> Path:
    """An untrained (random, seeded) classifier's bundle: fast to make, servable like any."""
    folder = tmp_path_factory.mktemp("bundle") / "model"
    torch.manual_seed(0)
    model = TransferClassifier("efficientnet_lite0", 3, pretrained=False)
    save_bundle(folder, model, "efficientnet_lite0", ["cat", "dog", "owl"], 32, {}, {})
    return folder


@pytest.fixture(scope="module")
def loaded():
    """Predictors by their weights' digest: the runs of these tests share bundles, and so their models."""
    import hashlib

    from nnc_web.engine.serving.predictor import load_predictor

    held: dict[str, object] = {}

    def load(folder: Path):
        key = hashlib.sha256((folder / "weights.safetensors").read_bytes()).hexdigest()
        if key not in held:
            held[key] = load_predictor(folder, "cpu", "torch")
        return held[key]

    return load


@pytest.fixture(autouse=True)
def model_server(monkeypatch, loaded):
    """The serving process's code, in this process: calls are answered as the real server answers."""
    from nnc_web.engine.serving.cache import ModelCache

    server = InlineTransport(cache=ModelCache(loaded))
    monkeypatch.setattr(services, "transport", lambda: server)
    throttle._local.clear()  # ids restart with every test: so would the buckets
    return server


@pytest.fixture
def served_run(random_bundle):
    def make(owner, name: str = "p") -> Run:
        import shutil

        project = Project.objects.create(owner=owner, name=name)
        run = Run.objects.create(project=project, plugin_id="transfer_learning", name="run 1")
        shutil.copytree(random_bundle, run.folder() / "model")
        return run

    return make


def image_instance(path=None, size=(24, 24), colour=(200, 40, 90)) -> dict:
    if path is not None:
        return {"data": base64.b64encode(path.read_bytes()).decode()}
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return {"data": base64.b64encode(buffer.getvalue()).decode()}


def predict(client, endpoint_id: int, body, **headers):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(f"/api/endpoints/{endpoint_id}/predict/", data=data, content_type="application/json",
                       **headers)


def test_a_trained_run_is_served_and_answers_what_its_evaluation_wrote(alice, client_for, tmp_path):
    client = client_for(alice)
    project_id, _, _ = digits_project(client, tmp_path)
    client.patch(f"/api/projects/{project_id}/", {"config": {"max_epoch": 2, "batch_size": 16}}, format="json")
    run = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "transfer_learning", "params": {
        "input_size": 32}}, format="json").json()
    run_job(run["job"])
    created = client.post("/api/endpoints/", {"run": run["id"], "name": "digits"}, format="json")
    assert created.status_code == 201, created.content
    endpoint = created.json()
    assert endpoint["url"] == f"http://testserver/api/endpoints/{endpoint['id']}/predict/"
    assert endpoint["curl"].endswith(endpoint["url"]) and "Authorization: Token $TOKEN" in endpoint["curl"]
    assert endpoint["model"] == {"available": True, "architecture": "transfer_classifier", "inputs": "image",
                                 "task": "classification", "classes": ["0", "1", "2"], "input_size": 32}
    assert endpoint["state"] == "running" and endpoint["max_instances"] == 64

    folder = Run.objects.get(pk=run["id"]).folder()
    with open(folder / "output_result.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    scores = np.array([[float(v) for v in row[-3:]] for row in rows[1:]])
    images = [Path(row[0]) for row in rows[1:]]  # the evaluation wrote absolute paths
    answer = predict(client, endpoint["id"], {"instances": [image_instance(p) for p in images]})
    assert answer.status_code == 200, answer.content
    predictions = answer.json()["predictions"]
    assert len(predictions) == len(images) == 9
    for ranked, expected in zip(predictions, scores, strict=True):
        assert [r["label"] for r in ranked] == [str(i) for i in np.argsort(-expected, kind="stable")]
        by_label = {r["label"]: r["score"] for r in ranked}
        np.testing.assert_allclose([by_label[str(k)] for k in range(3)], expected, atol=1e-5)

    again = predict(client, endpoint["id"], {"instances": [image_instance(images[0])], "parameters": {"top_k": 1}})
    (top,) = again.json()["predictions"]
    assert len(top) == 1 and top[0]["label"] == predictions[0][0]["label"]
    assert top[0]["score"] == pytest.approx(predictions[0][0]["score"], abs=1e-5)
    stats = client.get(f"/api/endpoints/{endpoint['id']}/").json()["stats"]
    assert stats["requests"] == 2 and stats["errors"] == 0 and stats["instances"] == 10
    assert stats["batches"] == 2 and stats["largest_batch"] == 9
    assert stats["latency_ms"]["p50"] > 0 and stats["runtime"]["runtime"] == "torch"


def test_endpoint_tokens_call_one_endpoint_and_are_revoked(alice, client_for, served_run):
    from rest_framework.test import APIClient

    client = client_for(alice)
    first = client.post("/api/endpoints/", {"run": served_run(alice).pk, "name": "one"}, format="json").json()
    second = client.post("/api/endpoints/", {"run": served_run(alice, "q").pk, "name": "two"}, format="json").json()
    made = client.post(f"/api/endpoints/{first['id']}/tokens/", {"name": "camera"}, format="json")
    assert made.status_code == 201 and made.json()["token"].startswith("nep_") and made.json()["name"] == "camera"
    token = made.json()["token"]
    listed = client.get(f"/api/endpoints/{first['id']}/tokens/").json()["results"]
    assert [t["prefix"] for t in listed] == [token[:12]] and "token" not in listed[0]
    device = APIClient()
    body = {"instances": [image_instance()]}
    ok = predict(device, first["id"], body, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert ok.status_code == 200 and [p["label"] for p in ok.json()["predictions"][0]] != []
    assert predict(device, first["id"], body, HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    assert predict(device, second["id"], body, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 404
    assert device.get(f"/api/endpoints/{first['id']}/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert client.delete(f"/api/endpoints/{first['id']}/tokens/{listed[0]['id']}/").status_code == 204
    revoked = predict(device, first["id"], body, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert revoked.status_code == 401 and revoked.json() == {"detail": "invalid or revoked endpoint token", "errors": {}}
    from rest_framework.authtoken.models import Token

    account = Token.objects.create(user=alice).key
    assert predict(device, first["id"], body, HTTP_AUTHORIZATION=f"Token {account}").status_code == 200


def test_stop_start_rename_and_delete(alice, client_for, served_run):
    client = client_for(alice)
    endpoint = client.post("/api/endpoints/", {"run": served_run(alice).pk}, format="json").json()
    assert endpoint["name"] == "p run 1"  # the project and run by default
    body = {"instances": [image_instance()]}
    assert client.post(f"/api/endpoints/{endpoint['id']}/stop/").json()["state"] == "stopped"
    stopped = predict(client, endpoint["id"], body)
    assert stopped.status_code == 409 and "stopped" in stopped.json()["detail"]
    assert client.post(f"/api/endpoints/{endpoint['id']}/start/").json()["state"] == "running"
    assert predict(client, endpoint["id"], body).status_code == 200
    renamed = client.patch(f"/api/endpoints/{endpoint['id']}/", {"name": "birds", "max_instances": 8}, format="json")
    assert renamed.json()["name"] == "birds" and renamed.json()["max_instances"] == 8
    bad = client.patch(f"/api/endpoints/{endpoint['id']}/", {"max_instances": 0, "rate_per_minute": "many",
                                                             "max_body_bytes": 10**12}, format="json")
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"max_instances", "rate_per_minute",
                                                                   "max_body_bytes"}
    assert Endpoint.objects.get(pk=endpoint["id"]).max_instances == 8  # nothing saved
    listed = client.get(f"/api/endpoints/?run={endpoint['run']}").json()["results"]
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert client.delete(f"/api/endpoints/{endpoint['id']}/").status_code == 204
    assert not Endpoint.objects.exists() and not EndpointStats.objects.exists()
    assert predict(client, endpoint["id"], body).status_code == 404


def test_creating_an_endpoint_needs_a_servable_run_and_a_free_name(alice, client_for, served_run):
    client = client_for(alice)
    run = served_run(alice)
    assert client.post("/api/endpoints/", {"run": run.pk, "name": "x"}, format="json").status_code == 201
    taken = client.post("/api/endpoints/", {"run": run.pk, "name": "x"}, format="json")
    assert taken.status_code == 400 and taken.json()["errors"]["name"] == ["you already have an endpoint with this name"]
    untrained = Run.objects.create(project=run.project, plugin_id="transfer_learning", name="run 2")
    refused = client.post("/api/endpoints/", {"run": untrained.pk}, format="json")
    assert refused.status_code == 400 and "no trained model" in refused.json()["errors"]["run"][0]
    for value in (None, True, 1.5, "abc", 999999):
        response = client.post("/api/endpoints/", {"run": value}, format="json")
        assert response.status_code == 400 and response.json()["errors"]["run"] == ["no such run"], value


@pytest.fixture
def endpoint(alice, client_for, served_run):
    client = client_for(alice)
    created = client.post("/api/endpoints/", {"run": served_run(alice).pk, "name": "e"}, format="json").json()
    return client, created


def crafted_png(width: int, height: int) -> bytes:
    from tests.engine.test_serving import crafted_png as craft

    return craft(width, height)


@pytest.mark.parametrize("body, status, field", [
    ("not json {", 400, "body"),
    ("[1, 2]", 400, "body"),
    ({"instances": []}, 400, "instances"),
    ({"instances": [{"data": "x"}] * 10_000}, 400, "instances"),
    ({"instances": [{"data": "%%% not base64 %%%"}]}, 400, "instances[0].data"),
    ({"instances": [{"data": base64.b64encode(b"GIF? no: just text").decode()}]}, 400, "instances[0].data"),
    ({"instances": [image_instance(), {"data": base64.b64encode(crafted_png(30000, 30000)).decode()}]}, 400,
     "instances[1].data"),
    ({"instances": [image_instance()], "parameters": {"colour": 1}}, 400, "parameters"),
])
def test_bad_requests_are_4xx_in_the_api_error_shape(endpoint, body, status, field):
    client, created = endpoint
    response = predict(client, created["id"], body)
    assert response.status_code == status, response.content
    answer = response.json()
    assert set(answer) == {"detail", "errors"} and field in answer["errors"] and answer["detail"].startswith(field)
    assert predict(client, created["id"], {"instances": [image_instance()]}).status_code == 200  # still answering


def test_body_size_limit_and_a_damaged_image(endpoint):
    client, created = endpoint
    client.patch(f"/api/endpoints/{created['id']}/", {"max_body_bytes": 2048}, format="json")
    big = predict(client, created["id"], {"instances": [image_instance(size=(400, 400))], "pad": "x" * 5000})
    assert big.status_code == 413 and "at most 2048" in big.json()["detail"] and "body" in big.json()["errors"]
    client.patch(f"/api/endpoints/{created['id']}/", {"max_body_bytes": 10**6}, format="json")
    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(noise, "PNG")
    cut = {"data": base64.b64encode(noise.getvalue()[:3000]).decode()}
    damaged = predict(client, created["id"], {"instances": [image_instance(), cut]})
    assert damaged.status_code == 400 and "damaged" in damaged.json()["errors"]["instances[1].data"][0]
    stats = client.get(f"/api/endpoints/{created['id']}/").json()["stats"]
    assert stats["requests"] == 2 and stats["errors"] == 2


def test_calls_are_throttled_per_token(endpoint, alice):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client, created = endpoint
    client.patch(f"/api/endpoints/{created['id']}/", {"rate_per_minute": 2}, format="json")  # a burst of 1
    token = client.post(f"/api/endpoints/{created['id']}/tokens/").json()["token"]
    device, body = APIClient(), {"instances": [image_instance()]}
    codes = [predict(device, created["id"], body, HTTP_AUTHORIZATION=f"Bearer {token}").status_code for _ in range(2)]
    assert codes == [200, 429]
    throttled = predict(device, created["id"], body, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert throttled.status_code == 429 and 20 <= int(throttled["Retry-After"]) <= 30  # half a minute per call
    assert "2 per minute" in throttled.json()["detail"] and throttled.json()["errors"] == {}
    account = Token.objects.create(user=alice).key  # another token: its own bucket
    assert predict(device, created["id"], body, HTTP_AUTHORIZATION=f"Token {account}").status_code == 200


def test_wrong_tokens_and_no_model_server(endpoint, monkeypatch):
    from rest_framework.test import APIClient

    client, created = endpoint
    body = {"instances": [image_instance()]}
    for header in ("Token 0123456789abcdef", "Bearer nep_forged", "Bearer something"):
        response = predict(APIClient(), created["id"], body, HTTP_AUTHORIZATION=header)
        assert response.status_code == 401 and set(response.json()) == {"detail", "errors"}, header
    assert predict(APIClient(), created["id"], body).status_code == 401
    monkeypatch.setattr(services, "transport", lambda: None)
    down = predict(client, created["id"], body)
    assert down.status_code == 503 and set(down.json()) == {"detail", "errors"}


def test_the_schema_documents_the_calls(alice, client_for):
    schema = client_for(alice).get("/api/schema/?format=json").json()
    predict_op = schema["paths"]["/api/endpoints/{endpoint_id}/predict/"]["post"]
    assert predict_op["operationId"] == "endpoint_predict_post"
    body = predict_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][body]["properties"]) == {"instances", "parameters"}
    assert {"200", "400", "401", "404", "409", "413", "429"} <= set(predict_op["responses"])
    assert any("endpointToken" in s for s in predict_op["security"])
    for path in ("/api/endpoints/", "/api/endpoints/{endpoint_id}/", "/api/endpoints/{endpoint_id}/tokens/",
                 "/api/endpoints/{endpoint_id}/start/", "/api/endpoints/{endpoint_id}/stop/"):
        assert path in schema["paths"], path


def test_a_run_downloads_as_a_triton_model_repository(alice, client_for, served_run):
    import zipfile

    client = client_for(alice)
    run = served_run(alice)
    response = client.get(f"/api/runs/{run.pk}/model-repository/?name=birds")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert 'filename="birds.zip"' in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == ["README.md", "birds/1/model.onnx", "birds/config.pbtxt", "birds/labels.txt"]
    assert archive.read("birds/labels.txt").decode().splitlines() == ["cat", "dog", "owl"]
    assert 'name: "birds"' in archive.read("birds/config.pbtxt").decode()
    default = client.get(f"/api/runs/{run.pk}/model-repository/")
    assert default.status_code == 200 and 'filename="p_run_1.zip"' in default["Content-Disposition"]
    bad = client.get(f"/api/runs/{run.pk}/model-repository/?name=a b")
    assert bad.status_code == 400 and "model name" in bad.json()["detail"]
    untrained = Run.objects.create(project=run.project, plugin_id="transfer_learning", name="run 2")
    assert client.get(f"/api/runs/{untrained.pk}/model-repository/").status_code == 400


def test_manage_py_predict_answers_what_the_endpoint_answers(alice, client_for, served_run, tmp_path, capsys,
                                                            monkeypatch):
    from django.core.management import CommandError, call_command

    from nnc_web.serving import conf

    monkeypatch.setattr(conf, "RUNTIME", "torch")  # as this module's model server (no runtime measurement)
    client = client_for(alice)
    run = served_run(alice)
    endpoint = client.post("/api/endpoints/", {"run": run.pk}, format="json").json()
    folder = tmp_path / "photos"
    folder.mkdir()
    for number, colour in enumerate([(250, 10, 10), (10, 250, 10), (10, 10, 250)]):
        Image.new("RGB", (40, 30), colour).save(folder / f"{number}.png")
    paths = sorted(folder.glob("*.png"))
    served = predict(client, endpoint["id"], {"instances": [image_instance(p) for p in paths]}).json()["predictions"]
    call_command("predict", run.pk, str(folder), "--json")
    answers = json.loads(capsys.readouterr().out)
    assert [a["input"] for a in answers] == ["0.png", "1.png", "2.png"]
    for answer, expected in zip(answers, served, strict=True):
        assert [p["label"] for p in answer["prediction"]] == [p["label"] for p in expected]
        np.testing.assert_allclose([p["score"] for p in answer["prediction"]], [p["score"] for p in expected], atol=1e-5)
    (tmp_path / "list.csv").write_text("x:image,y:label;cat;dog;owl\nphotos/1.png,0\nphotos/0.png,1\n")
    call_command("predict", run.pk, str(tmp_path / "list.csv"), "--top-k", "1")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["photos/1.png", "photos/0.png"]
    assert lines[0].split("\t")[1] == f"{served[1][0]['label']} {100 * served[1][0]['score']:.1f}%"
    (folder / "3.png").write_bytes(b"not an image at all")
    with pytest.raises(CommandError, match="1 of 4 inputs could not be read"):
        call_command("predict", run.pk, str(folder), "--json")
    broken = json.loads(capsys.readouterr().out)
    assert broken[3] == {"input": "3.png", "error": "not an image (JPEG, PNG, BMP, GIF or TIFF)"} and "prediction" in broken[2]
    with pytest.raises(CommandError, match="no run 999"):
        call_command("predict", 999, str(folder))


def run_with_bundle(owner, bundle: Path, name: str) -> Run:
    import shutil

    project = Project.objects.create(owner=owner, name=name)
    run = Run.objects.create(project=project, plugin_id=name, name="run 1")
    shutil.copytree(bundle, run.folder() / "model")
    return run


def test_anomaly_and_tabular_endpoints(alice, client_for, anomaly_run, tabular_runs, monkeypatch):  # noqa: F811
    from nnc_web.engine.serving.cache import ModelCache
    from nnc_web.engine.serving.predictor import load_predictor

    monkeypatch.setattr(services, "transport", lambda: InlineTransport(cache=ModelCache(
        lambda folder: load_predictor(folder, "cpu", "torch"))))
    client = client_for(alice)
    anomaly = client.post("/api/endpoints/", {"run": run_with_bundle(alice, anomaly_run["bundle"], "padim").pk},
                          format="json").json()
    assert anomaly["model"]["task"] == "anomaly" and anomaly["model"]["threshold"] == anomaly_run["threshold"]
    answer = predict(client, anomaly["id"], {"instances": [image_instance(anomaly_run["images"][-1])],
                                             "parameters": {"heatmap": True}})
    (verdict,) = answer.json()["predictions"]
    assert set(verdict) == {"score", "anomalous", "threshold", "heatmap"} and verdict["threshold"] == anomaly_run["threshold"]
    assert Image.open(io.BytesIO(base64.b64decode(verdict["heatmap"]))).size == (64, 64)

    wine = tabular_runs["classification"]
    tabular = client.post("/api/endpoints/", {"run": run_with_bundle(alice, wine["folder"] / "model", "wine").pk},
                          format="json").json()
    assert [c["name"] for c in tabular["model"]["columns"]] == ["alcohol", "malic_acid", "color_intensity", "proline",
                                                                 "cellar"]
    assert tabular["model"]["columns"][-1]["categories"] == ["east", "north", "south"]
    row = {"alcohol": 13.2, "malic_acid": "1.8", "color_intensity": 4.1, "proline": 1050, "cellar": "north"}
    ranked = predict(client, tabular["id"], {"instances": [row]}).json()["predictions"][0]
    assert sorted(r["label"] for r in ranked) == wine["data"].class_names
    wrong = predict(client, tabular["id"], {"instances": [row, {**row, "cellar": "attic"}]})
    assert wrong.status_code == 400 and "instances[1].cellar" in wrong.json()["errors"]
    heat = predict(client, tabular["id"], {"instances": [row], "parameters": {"heatmap": True}})
    assert heat.status_code == 400 and "parameters.heatmap" in heat.json()["errors"]


def test_staff_see_endpoints_and_tokens_in_the_admin(alice, make_user, client_for, served_run):
    client = client_for(alice)
    endpoint = client.post("/api/endpoints/", {"run": served_run(alice).pk, "name": "seen"}, format="json").json()
    client.post(f"/api/endpoints/{endpoint['id']}/tokens/", {"name": "cam"}, format="json")
    staff = client_for(make_user("root", is_staff=True, is_superuser=True))
    listing = staff.get("/admin/serving/endpoint/")
    assert listing.status_code == 200 and b"seen" in listing.content
    tokens = staff.get("/admin/serving/endpointtoken/")
    assert tokens.status_code == 200 and b"cam" in tokens.content
    page = staff.get(f"/admin/serving/endpoint/{endpoint['id']}/change/")
    assert page.status_code == 200
    assert staff.get("/admin/serving/endpointstats/").status_code == 200


def test_the_web_process_checks_calls_and_hands_them_over_without_loading_a_model(alice, client_for, served_run,
                                                                                  monkeypatch):
    from nnc_web.engine.training import bundle

    def refuse(*args, **kwargs):
        raise AssertionError("the web process loaded a model")

    monkeypatch.setattr(bundle, "load_bundle", refuse)
    monkeypatch.setattr(bundle, "load_file", refuse)

    class Recorder:  # stands for the Redis transport: what would go to the model server
        def __init__(self) -> None:
            self.sent: list = []

        def call(self, header: dict, body: bytes, timeout: float):
            self.sent.append((header, body))
            return 200, b'{"predictions": [[{"label": "owl", "score": 1.0}]]}'

        def warm(self, header: dict) -> None:
            self.sent.append(("warm", header))

        def record(self, event: dict) -> None:
            pass

    recorder = Recorder()
    monkeypatch.setattr(services, "transport", lambda: recorder)
    client = client_for(alice)
    run = served_run(alice)
    endpoint = client.post("/api/endpoints/", {"run": run.pk}, format="json").json()
    body = json.dumps({"instances": [image_instance()]}).encode()
    answer = client.post(f"/api/endpoints/{endpoint['id']}/predict/", data=body, content_type="application/json")
    assert answer.json() == {"predictions": [[{"label": "owl", "score": 1.0}]]}
    (warm, first), (header, sent) = recorder.sent
    assert warm == "warm" and first["bundle"] == str(run.folder() / "model")
    assert header["bundle"] == str(run.folder() / "model") and header["endpoint"] == endpoint["id"]
    assert header["limits"] == {"max_instances": 64, "max_image_bytes": 20 * 1024**2, "max_image_pixels": 25_000_000}
    assert sent == body  # passed on as the client sent it
    assert predict(client, endpoint["id"], {"instances": []}).status_code == 400
    assert len(recorder.sent) == 2  # a bad call never reaches the model server
