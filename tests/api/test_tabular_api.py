"""Tabular datasets from CSV through the API (real data: scikit-learn's iris)."""
from __future__ import annotations

import csv
import json

import pytest

from nnc_web.datasets.models import Dataset
from nnc_web.jobs.models import Job, JobEvent
from nnc_web.jobs.services import run_job
from tests.api.helpers import upload

pytestmark = pytest.mark.django_db


def iris_csv(tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris()
    path = tmp_path / "iris.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*iris.feature_names, "site", "species", "note"])
        for i, (row, target) in enumerate(zip(iris.data, iris.target, strict=True)):
            site = "" if i % 50 == 7 else "ABC"[i % 3]  # three rows without a site
            writer.writerow([*row, site, iris.target_names[target], f"row {i}"])
    return path


def run(client, path, **params) -> tuple[Job, list[str]]:
    upload_id = upload(client, path).json()["id"]
    response = client.post("/api/jobs/", {"plugin": "tabular_csv", "params": {"source": upload_id, **params}},
                           format="json")
    assert response.status_code == 201, response.content
    run_job(response.json()["id"])
    job = Job.objects.get(pk=response.json()["id"])
    return job, [e.data["line"] for e in JobEvent.objects.filter(job=job, kind="log").order_by("seq")]


def test_plain_csv_is_encoded_the_nnc_way(alice, client_for, tmp_path):
    client = client_for(alice)
    job, log = run(client, iris_csv(tmp_path), target="species", inputs="sepal length (cm),petal width (cm),site",
                   ratio1=80, ratio2=20)
    assert job.state == "succeeded", log
    assert "column 'site': categorical (3 values), 3 missing" in log
    assert "column 'petal width (cm)': numeric, 0 missing" in log
    assert "3 rows dropped for missing values (0 with no target)" in log
    train, valid = Dataset.objects.filter(job=job).order_by("pk")
    assert (train.rows, valid.rows) == (118, 29)
    page = client.get(f"/api/datasets/{train.pk}/rows/?limit=500").json()
    assert page["header"] == ["x__0:sepal length (cm)", "x__1:petal width (cm)", "x__2:site=A", "x__3:site=B",
                              "x__4:site=C", "y:species;setosa;versicolor;virginica", "# sepal width (cm)",
                              "# petal length (cm)", "# note"]
    for row in page["rows"]:
        assert sum(int(v) for v in row["cells"][2:5]) == 1  # exactly one site
        assert row["cells"][5] in ("0", "1", "2")
    assert train.class_names == ["setosa", "versicolor", "virginica"]
    assert sum(train.class_counts) == 118
    assert [(c["name"], c["shape"]) for c in train.columns] == [("x", "5"), ("y", "1")]
    schema = json.loads((train.folder() / "tabular_schema.json").read_text())
    assert schema["task"] == "classification" and schema["inputs"] == 5
    assert schema["features"][2] == {"column": "site", "kind": "categorical", "categories": ["A", "B", "C"],
                                     "fill": "(missing)"}


def test_fill_keeps_rows_and_regression_targets_stay_numbers(alice, client_for, tmp_path):
    job, log = run(client_for(alice), iris_csv(tmp_path), target="petal length (cm)", inputs="site,species",
                   missing="fill", task="regression", ratio1=100, ratio2=0)
    assert job.state == "succeeded", log
    dataset = Dataset.objects.get(job=job)
    assert dataset.rows == 150 and dataset.class_names == []
    header = (dataset.csv_path()).read_text().splitlines()[0].split(",")
    assert "x__3:site=(missing)" in header and header[header.index("y:petal length (cm)")]


def test_nnc_headers_are_kept(alice, client_for, tmp_path):
    path = tmp_path / "nnc.csv"
    path.write_text("x__0:a,x__1:b,y:label;no;yes\n0.5,1,0\n0.25,2,1\n1.5,3,1\n-2,4,0\n")
    job, log = run(client_for(alice), path, ratio1=100, ratio2=0)
    assert job.state == "succeeded", log
    dataset = Dataset.objects.get(job=job)
    assert dataset.csv_path().read_text().splitlines()[0] == "x__0:a,x__1:b,y:label;no;yes"
    assert dataset.class_names == ["no", "yes"] and dataset.class_counts == [2, 2]


@pytest.mark.parametrize("params,message", [
    ({}, "choose the target column"),
    ({"target": "species", "inputs": "colour"}, "unknown columns: colour"),
    ({"target": "species", "inputs": "note"}, "column 'note' has 150 categories (at most 100)"),
    ({"target": "note", "task": "regression"}, "is not numeric: choose classification"),
])
def test_bad_choices_fail_with_clear_messages(alice, client_for, tmp_path, params, message):
    job, log = run(client_for(alice), iris_csv(tmp_path), **params)
    assert job.state == "failed" and message in job.message, log


def test_a_csv_that_is_not_text_is_refused_at_upload(alice, client_for):
    response = client_for(alice).post("/api/uploads/?filename=data.csv", data=b"\xff\xfe\x00bad" * 100,
                                      content_type="application/octet-stream")
    assert response.status_code == 400 and "not UTF-8" in response.json()["detail"]
