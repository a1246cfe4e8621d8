"""Post-processing through the API on a trained run and on a dataset (jobs run in-process): the
result folder as working folder, outputs that never overwrite, the Output result table and its
saved rows, bad parameters as 400s naming what is available, another user's things as 404s."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from PIL import Image
from safetensors.numpy import load_file

from nnc_web import storage
from nnc_web.evaluations.models import Postprocess
from nnc_web.jobs.models import Job
from nnc_web.jobs.services import run_job
from nnc_web.projects.models import Run
from tests.api.helpers import digits_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def trained(alice, client_for, tmp_path):
    """A transfer-learning run on digits (12 validation images of 3 classes), evaluated."""
    client = client_for(alice)
    project_id, _, valid_id = digits_project(client, tmp_path, per_class=16)
    client.patch(f"/api/projects/{project_id}/", {"config": {"max_epoch": 2, "batch_size": 16}}, format="json")
    run = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "transfer_learning",
                                                                "params": {"input_size": 32}}, format="json").json()
    assert "job" in run, run
    run_job(run["job"])
    assert Job.objects.get(pk=run["job"]).state == "succeeded"
    return client, Run.objects.get(pk=run["id"]), valid_id


def postprocess(client, base: str, plugin: str, **params) -> dict:
    response = client.post(f"{base}/postprocess/", {"plugin": plugin, "params": params}, format="json")
    assert response.status_code == 201, response.content
    run_job(response.json()["job"])
    job = Job.objects.get(pk=response.json()["job"])
    assert job.state == "succeeded", job.message
    return client.get(f"{base}/postprocess/").json()["results"][0]


def read_output(client, base: str, path: str) -> bytes:
    return b"".join(client.get(f"{base}/outputs/{path}").streaming_content)


def output_frame(run: Run) -> pd.DataFrame:
    return pd.read_csv(run.folder() / "output_result.csv")


def test_cross_tabulation_runs_in_the_result_folder_and_never_overwrites(trained):
    client, run, _ = trained
    base = f"/api/runs/{run.pk}"
    first = postprocess(client, base, "cross_tabulation", variable1="y", variable2="y'")
    second = postprocess(client, base, "cross_tabulation", variable1="y", variable2="y'")
    assert first["outputs"] == [{"path": "cross_tabulation.csv", "kind": "table"}]
    assert second["outputs"] == [{"path": "cross_tabulation_1.csv", "kind": "table"}]
    assert (run.folder() / "cross_tabulation.csv").is_file() and (run.folder() / "cross_tabulation_1.csv").is_file()
    assert Job.objects.get(pk=first["job"]).queue == "cpu"
    frame = output_frame(run)
    label = frame[frame.columns[1]].astype(int)
    predicted = frame[[c for c in frame.columns if c.startswith("y'__")]].to_numpy().argmax(axis=1)
    expected = pd.crosstab(label, predicted).reindex(index=range(3), columns=range(3), fill_value=0)
    rows = list(csv.reader(io.StringIO(read_output(client, base, "cross_tabulation.csv").decode())))
    assert rows[:3] == [["Row variable", "y"], ["Column variable", "y'"], []]
    assert rows[3] == ["", "y' = 0", "y' = 1", "y' = 2"]
    assert [[int(v) for v in r[1:]] for r in rows[4:]] == expected.to_numpy().tolist()
    names = [c["name"] for c in client.get(f"{base}/csvs/").json()["results"]]
    assert names[0] == "output_result.csv" and "cross_tabulation_1.csv" in names


def test_bad_parameters_name_what_is_wrong_and_what_is_available(trained):
    client, run, _ = trained
    url = f"/api/runs/{run.pk}/postprocess/"

    def errors(plugin: str, **params) -> dict:
        response = client.post(url, {"plugin": plugin, "params": params}, format="json")
        assert response.status_code == 400, response.content
        return response.json()["errors"]

    assert errors("cross_tabulation", variable1="z")["variable1"] == [
        "no variable 'z' in output_result.csv; variables: x, y, y', y'__0, y'__1, y'__2"]
    assert "output_result.csv" in errors("tile_images", input="nope.csv")["input"][0]
    assert errors("tile_images", output="../escape.png")["output"]
    assert errors("tile_images", output="tiles.jpg")["output"] == ["must end with .png"]
    assert errors("transfer_learning")["plugin"] == ["unknown post-processing plugin 'transfer_learning'"]
    assert errors("tsne", variable="x", perplexity="many")["perplexity"] == ["must be a number"]
    assert not Postprocess.objects.exists()


def test_table_filters_sorts_saves_rows_and_tile_images_takes_them(trained, settings):
    client, run, _ = trained
    base = f"/api/runs/{run.pk}"
    page = client.get(f"{base}/table/?limit=5").json()
    assert page["total"] == 12 and len(page["rows"]) == 5 and page["next"] == 5
    assert [c["kind"] for c in page["columns"]] == ["image", "number", "number", "number", "number"]
    assert page["filters"] == {"classification": True, "anomaly": False}
    assert all(not cell.startswith("/") and str(settings.DATA_DIR) not in cell
               for row in page["rows"] for cell in row["cells"])  # never a server path
    frame = output_frame(run)
    scores = frame[[c for c in frame.columns if c.startswith("y'__")]].to_numpy()
    labels = frame[frame.columns[1]].to_numpy().astype(int)
    wrong = [i for i in range(12) if scores[i].argmax() != labels[i]]
    misclassified = client.get(f"{base}/table/?misclassified=1&limit=50").json()
    assert [r["index"] for r in misclassified["rows"]] == wrong
    cell = client.get(f"{base}/table/?actual=1&predicted=1").json()
    assert [r["index"] for r in cell["rows"]] == [i for i in range(12) if labels[i] == 1 and scores[i].argmax() == 1]
    by_score = client.get(f"{base}/table/?sort=2&desc=1&limit=50").json()
    assert [r["index"] for r in by_score["rows"]] == list(np.argsort(-scores[:, 0], kind="stable"))
    thumb = client.get(page["rows"][0]["images"]["0"])
    assert thumb.status_code == 200 and Image.open(io.BytesIO(b"".join(thumb.streaming_content))).size[0] <= 96
    assert client.get(f"{base}/image/?path=../../../../etc/passwd").status_code == 404
    assert client.get(f"{base}/image/?path=/etc/hostname").status_code == 404

    saved = client.post(f"{base}/table/save/", {"csv": "output_result.csv", "name": "first", "rows": [0, 3, 5]},
                        format="json")
    assert saved.status_code == 201 and saved.json() == {"name": "first.csv", "rows": 3}
    again = client.post(f"{base}/table/save/", {"name": "first", "actual": 2}, format="json").json()
    assert again == {"name": "first_1.csv", "rows": int((labels == 2).sum())}
    tiles = postprocess(client, base, "tile_images", input="first.csv", num_column=2)
    assert tiles["outputs"] == [{"path": "tiled_images.png", "kind": "image"}]
    mosaic = Image.open(io.BytesIO(read_output(client, base, "tiled_images.png")))
    assert mosaic.size == (2 * 32, 2 * 32)  # 3 tiles of 32 px, 2 per row
    source = Image.open(frame[frame.columns[0]][3]).convert("RGB")
    assert np.array_equal(np.asarray(mosaic)[:32, 32:], np.asarray(source))


def test_tsne_of_model_features_then_a_scatter_plot_of_it(trained):
    client, run, _ = trained
    base = f"/api/runs/{run.pk}"
    tsne = postprocess(client, base, "tsne", variable="features", perplexity=5)
    assert Job.objects.get(pk=tsne["job"]).queue == "gpu"  # it runs the model
    frame = pd.read_csv(run.folder() / "tsne.csv")
    assert list(frame.columns[-2:]) == ["features_tsne__0", "features_tsne__1"]
    assert frame[["features_tsne__0", "features_tsne__1"]].notna().all().all() and len(frame) == 12
    plot = postprocess(client, base, "scatter_plot", input="tsne.csv", x="features_tsne__0", y="features_tsne__1",
                       c="y")
    assert plot["outputs"] == [{"path": "scatter_plot.bokeh.json", "kind": "plot"}]
    served = client.get(f"{base}/plot/?path=scatter_plot.bokeh.json").json()
    assert served["csv"] == "tsne.csv"
    text = json.dumps(served["item"])
    assert "CustomJS" not in text and '"name":"points"' in text.replace(" ", "")
    assert client.get(f"{base}/plot/?path=tsne.csv").status_code == 400


def test_parameter_stats_covers_every_tensor_of_the_bundle(trained):
    client, run, _ = trained
    base = f"/api/runs/{run.pk}"
    postprocess(client, base, "parameter_stats")
    tensors = load_file(run.folder() / "model" / "weights.safetensors")
    stats = pd.read_csv(run.folder() / "parameter_stats.csv")
    assert sorted(stats["name"]) == sorted(tensors)
    name = "head.weight"
    row = stats[stats["name"] == name].iloc[0]
    values = tensors[name].astype(np.float64)
    assert row["shape"] == " x ".join(str(d) for d in values.shape)
    assert row["mean"] == pytest.approx(values.mean()) and row["stdev"] == pytest.approx(values.std(ddof=0))


def test_a_failing_plugin_ends_with_a_clear_message(trained):
    client, run, _ = trained
    base = f"/api/runs/{run.pk}"
    postprocess(client, base, "parameter_stats")
    response = client.post(f"{base}/postprocess/", {"plugin": "tile_images", "params": {
        "input": "parameter_stats.csv"}}, format="json")
    run_job(response.json()["job"])
    job = Job.objects.get(pk=response.json()["job"])
    assert job.state == "failed" and job.message.startswith("no image column in parameter_stats.csv")
    assert "Traceback" not in job.message and "/" not in job.message.split(";")[0]


def test_post_processing_on_a_dataset_keeps_the_dataset_unchanged(trained):
    client, _, valid_id = trained
    base = f"/api/datasets/{valid_id}"
    before = sorted(p.name for p in (Run.objects.first().valid_dataset.folder()).rglob("*"))
    csvs = client.get(f"{base}/csvs/").json()["results"]
    assert csvs == [{"name": "valid.csv", "rows": 12, "kind": "dataset"}]
    tiles = postprocess(client, base, "tile_images", input="valid.csv", num_column=4)
    assert tiles["outputs"] == [{"path": "tiled_images.png", "kind": "image"}] and tiles["dataset"] == valid_id
    assert Image.open(io.BytesIO(read_output(client, base, "tiled_images.png"))).size == (4 * 32, 3 * 32)
    after = sorted(p.name for p in (Run.objects.first().valid_dataset.folder()).rglob("*"))
    assert after == before
    outputs = storage.dataset_outputs_dir(Run.objects.first().project.owner_id, valid_id)
    assert (outputs / "tiled_images.png").is_file()
    assert client.delete(f"/api/datasets/{valid_id}/").status_code == 204
    assert not outputs.exists() and not Postprocess.objects.filter(dataset_id=valid_id).exists()


def test_another_users_run_and_dataset_are_404_on_every_new_endpoint(trained, bob, client_for):
    client, run, valid_id = trained
    postprocess(client, f"/api/runs/{run.pk}", "scatter_plot")  # a plot exists to be asked for
    other = client_for(bob)
    for base in (f"/api/runs/{run.pk}", f"/api/datasets/{valid_id}"):
        for method, url in [("get", f"{base}/postprocess/"), ("post", f"{base}/postprocess/"),
                            ("get", f"{base}/csvs/"), ("get", f"{base}/table/"), ("post", f"{base}/table/save/"),
                            ("post", f"{base}/table/to-dataset/"), ("get", f"{base}/image/?path=x.png"),
                            ("get", f"{base}/plot/?path=scatter_plot.bokeh.json"),
                            ("get", f"{base}/outputs/scatter_plot.bokeh.json")]:
            body = {"plugin": "cross_tabulation", "params": {}, "csv": "output_result.csv", "name": "stolen"}
            response = getattr(other, method)(url, body, format="json") if method == "post" else other.get(url)
            assert response.status_code == 404, (method, url, response.status_code)
    assert Postprocess.objects.count() == 1 and not Job.objects.filter(owner=bob).exists()


def test_headless_post_processing_on_a_result_and_on_server_files(trained, capsys, tmp_path):
    _, run, _ = trained
    call_command("run_plugin", "cross_tabulation", "--user", "alice", "--result", str(run.pk), "--inline",
                 "--param", "variable2=y'", "--param", "output_in_ratio=true")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == str(run.folder())
    rows = list(csv.reader(open(run.folder() / "cross_tabulation.csv", newline="")))
    assert all(abs(sum(float(v) for v in r[1:]) - 1) < 1e-9 for r in rows[4:] if any(float(v) for v in r[1:]))
    copy = tmp_path / "elsewhere.csv"
    copy.write_bytes((run.folder() / "output_result.csv").read_bytes())
    call_command("run_plugin", "tile_images", "--user", "alice", "--inline", "--param", f"input={copy}",
                 "--param", "num_column=6")
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    assert folder.endswith(f"/jobs/{Job.objects.order_by('-pk').first().pk}")
    assert Image.open(f"{folder}/tiled_images.png").size == (6 * 32, 2 * 32)


def test_saved_rows_become_a_dataset_with_their_images(trained):
    client, run, _ = trained
    base = f"/api/runs/{run.pk}"
    client.post(f"{base}/table/save/", {"name": "picked", "rows": [1, 2, 7]}, format="json")
    bad = client.post(f"{base}/table/to-dataset/", {"csv": "picked.csv", "name": "no spaces allowed"}, format="json")
    assert bad.status_code == 400 and "name" in bad.json()["errors"]
    response = client.post(f"{base}/table/to-dataset/", {"csv": "picked.csv", "name": "picked"}, format="json")
    assert response.status_code == 201, response.content
    run_job(response.json()["job"])
    job = client.get(f"/api/jobs/{response.json()['job']}/").json()
    assert job["state"] == "succeeded" and [d["name"] for d in job["datasets"]] == ["picked"]
    rows = client.get(f"/api/datasets/{job['datasets'][0]['id']}/rows/").json()
    assert rows["total"] == 3 and all(r["cells"][0].startswith("./images/0/") for r in rows["rows"])
    original = output_frame(run)[output_frame(run).columns[0]][7]
    copied = client.get(f"/api/datasets/{job['datasets'][0]['id']}/files/{rows['rows'][2]['cells'][0][2:]}")
    assert b"".join(copied.streaming_content) == open(original, "rb").read()


def test_review_findings_stay_fixed(trained, settings):
    """Server paths never reach job logs; a dataset's CSV is never shadowed; only real image files are
    served, as images, within the pixel cap; a computed variable needs a model; outputs never overwrite."""
    client, run, valid_id = trained
    base = f"/api/runs/{run.pk}"
    frame = output_frame(run)
    client.post(f"{base}/table/save/", {"name": "three", "rows": [0, 3, 5]}, format="json")
    (open(frame[frame.columns[0]][3], "wb")).write(b"damaged")  # one image of the dataset breaks
    tiles = postprocess(client, base, "tile_images", input="three.csv", num_column=3)
    log = [e.data["line"] for e in Job.objects.get(pk=tiles["job"]).events.filter(kind="log")]
    skipped = [line for line in log if line.startswith("skipped")]
    assert len(skipped) == 1 and skipped[0].startswith("skipped datasets/") and "not a readable image" in skipped[0]
    assert not any(str(settings.DATA_DIR) in line for line in log)

    (run.folder() / "evil.png.html").write_text("<script>alert(1)</script>")
    assert client.get(f"{base}/image/?path=evil.png.html").status_code == 404
    image = client.get(f"{base}/image/?path={page_cell(client, base)}")
    assert image["Content-Type"] == "image/png" and image["Content-Security-Policy"] == "sandbox"
    settings.NNC_MAX_IMAGE_PIXELS = 100  # every image is now "too large": no thumbnail, no 500
    assert client.get(f"{base}/image/?path={page_cell(client, base, 1)}&thumb=1").status_code == 404

    dataset = f"/api/datasets/{valid_id}"
    saved = client.post(f"{dataset}/table/save/", {"name": "valid", "rows": [0]}, format="json").json()
    assert saved["name"] == "valid_1.csv"
    listed = {c["name"]: c for c in client.get(f"{dataset}/csvs/").json()["results"]}
    assert listed["valid.csv"] == {"name": "valid.csv", "rows": 12, "kind": "dataset"}
    features = client.post(f"{dataset}/postprocess/", {"plugin": "tsne", "params": {"input": "valid.csv", "variable": "features"}},
                           format="json")
    assert features.status_code == 400 and "trained model" in features.json()["errors"]["variable"][0]


def page_cell(client, base: str, row: int = 0) -> str:
    from urllib.parse import quote

    return quote(client.get(f"{base}/table/?start={row}&limit=1").json()["rows"][0]["cells"][0], safe="")


def test_every_run_endpoint_is_404_for_another_user_and_refused_to_anonymous(trained, bob, client_for):
    client, run, _ = trained
    base = f"/api/runs/{run.pk}"
    endpoints = [("get", f"{base}/"), ("get", f"{base}/results/"), ("get", f"{base}/files/output_result.csv"),
                 ("get", f"{base}/files/metrics.json"), ("get", f"{base}/bundle/"),
                 ("get", f"{base}/export/?to=torchscript"), ("get", f"/api/curves/?runs={run.pk}"),
                 ("post", f"{base}/evaluate/"), ("post", f"{base}/threshold/"), ("post", f"{base}/resume/"),
                 ("get", f"/api/projects/{run.project_id}/runs/"), ("post", f"/api/projects/{run.project_id}/runs/"),
                 ("patch", f"/api/projects/{run.project_id}/"), ("delete", f"/api/projects/{run.project_id}/")]
    for method, url in endpoints:
        if method == "get":
            assert client.get(url).status_code == 200, url  # the owner's answers
    before = Job.objects.count()
    for caller, allowed in ((client_for(bob), (404,)), (client_for(None), (401, 403))):
        for method, url in endpoints:
            response = getattr(caller, method)(url, {"threshold": 0.5, "plugin": "transfer_learning"},
                                               format="json") if method != "get" else caller.get(url)
            assert response.status_code in allowed, (method, url, response.status_code)
    assert Run.objects.filter(pk=run.pk).exists() and Job.objects.count() == before
