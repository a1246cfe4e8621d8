"""LIME and Kernel SHAP on real tabular runs (scikit-learn's iris through the Tabular plugin and the
tabular MLP) through the API: NNC's output layouts, one-hot `site` and `species` as one feature, the
single and batch forms agreeing row by row, Shapley values adding up to y' minus the base value, and
bad input as failed jobs with clear messages."""
from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
from PIL import Image

from nnc_web.engine.training.tabular_mlp import load_tabular_bundle, load_tabular_csv, predict_tabular
from nnc_web.jobs.models import Job
from nnc_web.jobs.services import run_job
from nnc_web.projects.models import Run
from tests.api.test_training_api import tabular_project

pytestmark = pytest.mark.django_db

NUMERIC = ["x__0:sepal length (cm)", "x__1:sepal width (cm)", "x__2:petal width (cm)"]
CONDITION = re.compile(r"^(-?\d+\.\d\d < )?'[^']+'( <= -?\d+\.\d\d)?$|^-?\d+\.\d\d < '[^']+'$")


def trained(client, tmp_path, target: str, task: str) -> Run:
    project_id = tabular_project(client, tmp_path, target, task)
    client.patch(f"/api/projects/{project_id}/", {"config": {"max_epoch": 8}}, format="json")
    run = client.post(f"/api/projects/{project_id}/runs/", {"plugin": "tabular_mlp"}, format="json").json()
    run_job(run["job"])
    job = Job.objects.get(pk=run["job"])
    assert job.state == "succeeded", job.message
    return Run.objects.get(pk=run["id"])


def start(client, run: Run, plugin: str, **params) -> Job:
    response = client.post(f"/api/runs/{run.pk}/postprocess/", {"plugin": plugin, "params": params}, format="json")
    assert response.status_code == 201, response.content
    run_job(response.json()["job"])
    return Job.objects.get(pk=response.json()["job"])


def explain(client, run: Run, plugin: str, **params) -> list[dict]:
    job = start(client, run, plugin, **params)
    assert job.state == "succeeded", job.message
    assert job.queue == "gpu"  # it runs a model
    listed = client.get(f"/api/runs/{run.pk}/postprocess/").json()["results"]
    return next(p for p in listed if p["job"] == job.pk)["outputs"]


def lines(run: Run, name: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO((run.folder() / name).read_text())))


def result_rows(run: Run) -> tuple[list[str], list[list[str]]]:
    rows = lines(run, "output_result.csv")
    return rows[0], rows[1:]


def test_lime_and_shap_on_a_tabular_classifier(alice, client_for, tmp_path):
    client = client_for(alice)
    run = trained(client, tmp_path, "species", "classification")
    header, rows = result_rows(run)
    assert header[3:7] == ["x__3:site=A", "x__4:site=B", "x__5:site=C", "x__6:site=(missing)"]
    names = [*NUMERIC, "x__3..6:site"]
    row = rows[2]  # index 3, 1-based
    site = ["A", "B", "C", "(missing)"][[float(v) for v in row[3:7]].index(1.0)]

    outputs = explain(client, run, "lime_tabular", index=3, class_index=2)
    assert outputs == [{"path": "lime_tabular.csv", "kind": "table"}, {"path": "LIME_Importance.png", "kind": "image"}]
    single = lines(run, "lime_tabular.csv")
    assert len(single) == 5 and single[0] == ["", *names] and single[2] == []
    assert single[1] == ["Sample (Index 3)", *row[:3], site]
    assert single[3][0] == "" and single[3][4] == f"'site' = {site}"
    assert all(CONDITION.match(c) for c in single[3][1:4]), single[3]
    assert single[4][0] == "Importance" and all(re.fullmatch(r"-?\d+\.\d{5}", w) for w in single[4][1:])
    assert len(single[4]) == 5
    weights = np.abs([float(w) for w in single[4][1:]])
    assert weights[2] > 3 * weights[3], weights  # petal width tells virginica; site (letters dealt in turn) not
    assert Image.open(run.folder() / "LIME_Importance.png").format == "PNG"

    with open(run.folder() / "first_rows.csv", "w", newline="") as handle:  # the batch forms take 6 rows
        csv.writer(handle, lineterminator="\n").writerows([header, *rows[:6]])
    outputs = explain(client, run, "lime_tabular_batch", input="first_rows.csv", class_index=2)
    assert [o["path"] for o in outputs] == ["lime_tabular_batch.csv", "Mean_LIME.png", "Beeswarm_LIME.png"]
    batch = lines(run, "lime_tabular_batch.csv")
    assert batch[0] == ["Index", *(f"Importance of {n}" for n in names)]
    assert [r[0] for r in batch[1:]] == ["1", "2", "3", "4", "5", "6"]
    assert batch[3][1:] == single[4][1:]  # every row seeded alike: the batch's row 3 is the single one

    outputs = explain(client, run, "shap_tabular", index=3, class_index=2)
    assert outputs == [{"path": "shap_tabular.csv", "kind": "table"},
                       {"path": "shap_tabular/shap_tabular.png", "kind": "image"}]
    shap = lines(run, "shap_tabular.csv")
    assert shap[0] == ["", *names, "Image"] and shap[1] == ["Sample (Index 3)", *row[:3], site] and shap[2] == []
    assert shap[3][0] == "Importance" and shap[3][-1] == "shap_tabular/shap_tabular.png"
    values = np.array([float(v) for v in shap[3][1:-1]])
    model, _ = load_tabular_bundle(run.folder() / "model")
    base = predict_tabular(model, load_tabular_csv(run.train_dataset.csv_path()))[:, 2].mean()
    assert abs(values.sum() - (float(row[header.index("y'__2")]) - base)) <= 1e-4  # adds up to y' - base
    assert Image.open(run.folder() / "shap_tabular" / "shap_tabular.png").format == "PNG"

    outputs = explain(client, run, "shap_tabular_batch", input="first_rows.csv", class_index=2)
    assert [o["path"] for o in outputs] == ["shap_tabular_batch.csv", "Mean_SHAP.png", "Beeswarm_SHAP.png"]
    batch = lines(run, "shap_tabular_batch.csv")
    assert batch[0] == ["Index", *names] and [r[0] for r in batch[1:]] == ["1", "2", "3", "4", "5", "6"]
    assert batch[3][1:] == shap[3][1:-1]

    second = explain(client, run, "shap_tabular", index=3, class_index=2)  # never over the first
    assert [o["path"] for o in second] == ["shap_tabular_1.csv", "shap_tabular_1/shap_tabular.png"]

    for plugin, params, message in (
        ("lime_tabular", {"index": 0}, "index 0 is out of range: the index is 1-based, from 1 to 45 "
                                       "(the rows of output_result.csv)"),
        ("shap_tabular", {"index": 46}, "index 46 is out of range: the index is 1-based, from 1 to 45"),
        ("lime_tabular_batch", {"class_index": 3}, "class_index 3 is out of range: this model has 3 classes "
                                                   "(0 = setosa, 1 = versicolor, 2 = virginica)"),
        ("shap_tabular_batch", {"memory_limit": 0.001}, "above the memory limit of 0.00 GiB"),
    ):
        job = start(client, run, plugin, **params)
        assert job.state == "failed" and message in job.message, (plugin, job.message)


def test_lime_and_shap_on_a_tabular_regressor(alice, client_for, tmp_path):
    client = client_for(alice)
    run = trained(client, tmp_path, "petal length (cm)", "regression")
    header, rows = result_rows(run)
    species = ["setosa", "versicolor", "virginica"]
    assert header[7:10] == [f"x__{7 + i}:species={s}" for i, s in enumerate(species)]
    row = rows[0]
    kind = species[[float(v) for v in row[7:10]].index(1.0)]

    explain(client, run, "lime_tabular", index=1)
    single = lines(run, "lime_tabular.csv")
    assert single[0][-1] == "x__7..9:species" and single[3][-1] == f"'species' = {kind}"
    assert single[1][-1] == kind

    explain(client, run, "shap_tabular", index=1)
    shap = lines(run, "shap_tabular.csv")
    values = np.array([float(v) for v in shap[3][1:-1]])
    model, _ = load_tabular_bundle(run.folder() / "model")
    base = predict_tabular(model, load_tabular_csv(run.train_dataset.csv_path()))[:, 0].mean()
    assert abs(values.sum() - (float(row[header.index("y'")]) - base)) <= 1e-4

    job = start(client, run, "lime_tabular", index=1, class_index=1)
    assert job.state == "failed" and "this model is a regressor, so class_index must be 0" in job.message
