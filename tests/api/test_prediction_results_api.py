"""The evaluation rows of detector and segmenter runs (GET /api/runs/<id>/results/): worst first, every
kept predicted box with its score and the truth boxes as JSON (the threshold slider re-draws without a
request), the class palette, a damaged or missing predicted file as a message on its row, user scoping."""
from __future__ import annotations

import pytest

from nnc_web.projects.models import Run
from tests.api.helpers import upload
from tests.api.test_anomaly_api import run_plugin, start
from tests.api.test_easymaker_api import segmentation_zip
from tests.sample_data import write_yolo_zip

pytestmark = pytest.mark.django_db


def detection_run(client, tmp_path) -> dict:
    source = upload(client, write_yolo_zip(tmp_path / "yolo.zip", count=12)).json()["id"]
    job = run_plugin(client, "object_detection_centernet", {
        "source": source, "num_class": 2, "width": 64, "height": 64, "channel": 3, "grid_size": 4,
        "file1": "det_train", "ratio1": 75, "file2": "det_valid", "ratio2": 25})
    assert job.state == "succeeded", job.message
    datasets = {d["name"]: d for d in client.get("/api/datasets/").json()["results"]}
    project = client.post("/api/projects/", {"name": "boxes", "train_dataset": datasets["det_train"]["id"],
                                             "valid_dataset": datasets["det_valid"]["id"]}, format="json").json()
    client.patch(f"/api/projects/{project['id']}/", {"config": {"batch_size": 8, "max_epoch": 1}}, format="json")
    run = start(client, project["id"], "object_detection", input_size=64, class_names="red,green")
    assert run["state"] == "succeeded", run
    return run


def lines_of(client, url: str) -> list[list[str]]:
    response = client.get(url)
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if hasattr(response, "streaming_content") else response.content
    return [line.split() for line in body.decode().splitlines() if line.strip()]


def test_detection_rows_carry_truth_and_every_kept_box_with_its_score(alice, bob, client_for, tmp_path):
    client = client_for(alice)
    run = detection_run(client, tmp_path)
    page = client.get(f"/api/runs/{run['id']}/results/?limit=2").json()
    assert page["detection"] and page["total"] == 3 and page["next"] == 2 and len(page["rows"]) == 2
    assert page["threshold"] == 0.5 and page["min_score"] == 0.05
    assert page["class_names"] == ["red", "green"] and page["palette"] == ["#e6194b", "#3cb44b"]
    rest = client.get(f"/api/runs/{run['id']}/results/?start=2&limit=2").json()
    assert rest["next"] is None and len(rest["rows"]) == 1
    rows = page["rows"] + rest["rows"]
    assert sorted(r["index"] for r in rows) == [0, 1, 2]
    assert [r["error"] for r in rows] == sorted((r["error"] for r in rows), reverse=True)
    for row in rows:
        assert "problem" not in row
        # the truth boxes are the validation dataset's boxes file, line for line
        truth = lines_of(client, f"/api/datasets/{page['dataset']}/files/{row['truth'].removeprefix('./')}")
        assert [[b["cls"], b["cx"], b["cy"], b["w"], b["h"]] for b in row["truth_boxes"]] == [
            [int(t[0]), *map(float, t[1:])] for t in truth]
        assert len(truth) in (1, 2)  # write_yolo_zip: one or two rectangles per image
        # every box of the predicted file, best first, none below the evaluation's keep score
        predicted = lines_of(client, f"/api/runs/{run['id']}/files/{row['predicted']}")
        scores = [b["score"] for b in row["boxes"]]
        assert len(row["boxes"]) == len(predicted) and scores == sorted(scores, reverse=True)
        assert sorted(scores) == sorted(float(p[5]) for p in predicted)
        assert all(s >= 0.05 for s in scores) and all(b["cls"] in (0, 1) for b in row["boxes"])
        kept = sum(s >= 0.5 for s in scores)
        # #errors counts false positives and missed boxes at the run's threshold
        assert abs(kept - len(truth)) <= row["error"] <= kept + len(truth)

    # a damaged or missing predicted file: a message on its row, the other rows as before
    folder = Run.objects.get(pk=run["id"]).folder()
    worst = rows[0]
    (folder / worst["predicted"]).write_text("not boxes\n")
    again = client.get(f"/api/runs/{run['id']}/results/?limit=10")
    assert again.status_code == 200
    damaged = next(r for r in again.json()["rows"] if r["index"] == worst["index"])
    assert damaged["boxes"] == [] and damaged["problem"].startswith(f"its predicted boxes file {worst['predicted']}")
    assert "/" not in damaged["problem"].replace(worst["predicted"], "")  # no server path in the message
    (folder / worst["predicted"]).unlink()
    missing = next(r for r in client.get(f"/api/runs/{run['id']}/results/?limit=10").json()["rows"]
                   if r["index"] == worst["index"])
    assert "evaluate the run again" in missing["problem"]
    assert sum("problem" in r for r in client.get(f"/api/runs/{run['id']}/results/?limit=10").json()["rows"]) == 1

    # another user's run is not found, for its rows and its files
    other = client_for(bob)
    assert other.get(f"/api/runs/{run['id']}/results/").status_code == 404
    assert other.get(f"/api/runs/{run['id']}/files/{rows[1]['predicted']}").status_code == 404


def test_segmentation_rows_name_truth_and_predicted_masks(alice, bob, client_for, tmp_path):
    client = client_for(alice)
    source = upload(client, segmentation_zip(tmp_path)).json()["id"]
    job = run_plugin(client, "easymaker_segmentation", {"source": source, "width": 64, "height": 64,
                                                        "mode": "padding"})
    assert job.state == "succeeded", job.message
    datasets = {d["name"]: d for d in client.get("/api/datasets/").json()["results"]}
    project = client.post("/api/projects/", {"name": "city", "train_dataset": datasets["train"]["id"],
                                             "valid_dataset": datasets["validation"]["id"]}, format="json").json()
    client.patch(f"/api/projects/{project['id']}/", {"config": {"batch_size": 4, "max_epoch": 1}}, format="json")
    run = start(client, project["id"], "semantic_segmentation", input_size=64)
    assert run["state"] == "succeeded", run
    page = client.get(f"/api/runs/{run['id']}/results/").json()
    assert page["segmentation"] and page["total"] == 1 and page["next"] is None
    assert page["class_names"] == ["unlabeled", "road", "car"] and len(page["palette"]) == 3
    row = page["rows"][0]
    assert set(row) == {"index", "image", "truth", "error", "predicted"} and 0 <= row["error"] <= 1
    assert row["predicted"] == "predicted/0.png" and row["truth"].endswith(".png")
    assert client.get(f"/api/runs/{run['id']}/files/{row['predicted']}").status_code == 200
    assert client.get(f"/api/datasets/{page['dataset']}/files/{row['truth'].removeprefix('./')}").status_code == 200
    assert client_for(bob).get(f"/api/runs/{run['id']}/results/").status_code == 404
