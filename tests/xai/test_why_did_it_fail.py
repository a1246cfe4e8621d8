""""Why did it fail": the per-class picks (most / least activating, misclassified) computed by hand, and
the job on a trained run: its CSV, one side-by-side picture per pick (image | Grad-CAM true | predicted)."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from nnc_web.engine.xai.why import pick_rows, side_by_side
from tests.xai.test_image_api import log_of, start, trained  # noqa: F401 - trained is a fixture


def test_picks_per_class_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8],    # class 0: row 2 misclassified
                       [0.3, 0.7], [0.7, 0.3], [0.55, 0.45]])  # class 1: rows 4 and 5 misclassified
    picks = [(p.class_index, p.kind, p.rank, p.row, p.predicted) for p in pick_rows(labels, scores, 2)]
    assert picks == [(0, "most", 1, 0, 0), (0, "most", 2, 1, 0), (0, "least", 1, 2, 1), (0, "least", 2, 1, 0),
                     (0, "misclassified", 1, 2, 1),
                     (1, "most", 1, 3, 1), (1, "most", 2, 5, 0), (1, "least", 1, 4, 0), (1, "least", 2, 5, 0),
                     (1, "misclassified", 1, 4, 0), (1, "misclassified", 2, 5, 0)]  # the worst failure first
    assert pick_rows(np.array([1]), np.array([[0.2, 0.8, 0.0]]), 3)[0].score == pytest.approx(0.8)  # empty classes skipped


def test_side_by_side_keeps_each_picture_with_a_gap():
    a, b = np.zeros((4, 3, 3), np.uint8), np.full((4, 2), 7, np.uint8)
    joined = side_by_side(a, b, gap=1)
    assert joined.shape == (4, 6, 3) and (joined[:, 3] == 255).all() and (joined[:, 4:] == 7).all()


@pytest.mark.django_db
def test_job_writes_the_picks_and_their_pictures(trained):  # noqa: F811
    client, run = trained
    source = list(csv.reader(open(run.folder() / "output_result.csv", newline="")))
    header, body = source[0], source[1:]
    y, scores = header.index(next(h for h in header if h.split(":")[0] == "y")), \
        [i for i, h in enumerate(header) if h.startswith("y'__")]
    labels = np.array([int(r[y]) for r in body])
    expected = pick_rows(labels, np.array([[float(r[i]) for i in scores] for r in body]), 2)

    from nnc_web.plugins.registry import ordered

    assert "why_did_it_fail" in [p.id for p in ordered()]  # listed in the Plugins menu (catalog + order)
    job = start(client, run, "why_did_it_fail", per_class=2, target_layer="blocks.3")
    assert job.state == "succeeded", job.message
    assert (job.progress_done, job.progress_total) == (len(expected), len(expected))
    listed = client.get(f"/api/runs/{run.pk}/postprocess/").json()["results"][0]
    assert listed["outputs"] == [{"path": "why_did_it_fail.csv", "kind": "table"}]
    rows = list(csv.reader(open(run.folder() / "why_did_it_fail.csv", newline="")))
    assert rows[0] == ["why", "class", "kind", "rank", "index", "x", "y", "predicted", "score"]
    assert [(int(r[1]), r[2], int(r[3]), int(r[4]) - 1, int(r[7])) for r in rows[1:]] == \
        [(p.class_index, p.kind, p.rank, p.row, p.predicted) for p in expected]
    assert {r[2] for r in rows[1:]} >= {"most", "least"}
    for r in rows[1:]:
        assert r[5] == body[int(r[4]) - 1][0] and int(r[6]) == labels[int(r[4]) - 1]
        assert r[0] == f"why_did_it_fail/{r[1]}/{r[2]}_{r[3]}.png"
        picture = Image.open(run.folder() / r[0])
        assert picture.size == (3 * 32 + 2 * 2, 32) and picture.mode == "RGB"  # image | true | predicted
    assert any("most and least activating" in line for line in log_of(job))

    bad = start(client, run, "why_did_it_fail", score_variable="y")
    assert bad.state == "failed" and "y has 1 columns; the model has 3 classes" in bad.message
