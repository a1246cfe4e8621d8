"""Evaluation endpoints on a run or a dataset (`/api/runs/<id>/...`, `/api/datasets/<id>/...`):
post-processing jobs, the Output result table, saved rows, the images and outputs it shows."""
from __future__ import annotations

import json

from django.http import FileResponse, Http404
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nnc_web import storage
from nnc_web.api import documented, field_errors
from nnc_web.datasets.selectors import dataset_of
from nnc_web.engine.errors import UserError
from nnc_web.evaluations import selectors, services
from nnc_web.evaluations.results import result_rows
from nnc_web.evaluations.serializers import PostprocessSerializer
from nnc_web.evaluations.tables import RowFilter, table_page
from nnc_web.evaluations.workspace import EVALUATION_CSV


class TargetView(APIView):
    """A view on the user's run (`run_id`) or dataset (`dataset_id`); anyone else's is a 404."""

    def target(self, request: Request, kwargs: dict):
        if "run_id" in kwargs:
            run = selectors.run_of(request.user, kwargs["run_id"])
            return run, None
        return None, dataset_of(request.user, kwargs["dataset_id"])

    def workspace(self, request: Request, kwargs: dict):
        run, dataset = self.target(request, kwargs)
        return services.workspace_of(run, dataset), run, dataset

    @staticmethod
    def is_anomaly(run) -> bool:
        return run is not None and (run.metrics or {}).get("kind") == "anomaly"


def _int(value, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a whole number") from None


def _float(value, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number") from None


def row_filter(data) -> RowFilter:
    flagged = data.get("flagged")
    return RowFilter(misclassified=str(data.get("misclassified", "")) in ("1", "true", "True"),
                     actual=_int(data.get("actual"), "actual"), predicted=_int(data.get("predicted"), "predicted"),
                     threshold=_float(data.get("threshold"), "threshold"),
                     flagged={"1": True, "0": False, "true": True, "false": False}.get(str(flagged).lower())
                     if flagged not in (None, "") else None,
                     sort=_int(data.get("sort"), "sort"), descending=str(data.get("desc", "")) in ("1", "true"))


class PostprocessView(TargetView):
    """GET: the post-processing jobs on this run or dataset, newest first. POST `{"plugin", "params"}`:
    start one; it runs in the result folder and its outputs are listed here once it succeeded."""

    def get(self, request: Request, **kwargs) -> Response:
        run, dataset = self.target(request, kwargs)
        rows = selectors.postprocesses_of_run(run) if run else selectors.postprocesses_of_dataset(dataset)
        return Response({"results": PostprocessSerializer(rows[:200], many=True).data})

    def post(self, request: Request, **kwargs) -> Response:
        run, dataset = self.target(request, kwargs)
        postprocess, errors = services.start_postprocess(
            request.user, plugin_id=str(request.data.get("plugin", "")), raw_params=request.data.get("params") or {},
            run=run, dataset=dataset)
        if errors:
            return field_errors(errors)
        return Response(PostprocessSerializer(postprocess).data, status=status.HTTP_201_CREATED)


class CsvListView(TargetView):
    """The CSVs a `csv` parameter may choose: output_result.csv (or the dataset's CSV), saved rows,
    plugin outputs."""

    def get(self, request: Request, **kwargs) -> Response:
        workspace, run, dataset = self.workspace(request, kwargs)
        outputs = {o["path"] for p in (run.postprocesses.all() if run else dataset.postprocesses.all())
                   for o in p.outputs}
        results = []
        for name, path in workspace.csvs.items():
            kind = "evaluation" if run and name == EVALUATION_CSV else "dataset" if dataset and \
                name == dataset.csv_name else "output" if name in outputs else "saved"
            with open(path, "rb") as handle:
                rows = max(0, sum(1 for line in handle if line.strip()) - 1)
            results.append({"name": name, "rows": rows, "kind": kind})
        return Response({"results": results})


class TableView(TargetView):
    """`?csv=<name>&start&limit&sort=<column>&desc=1` and the filters `misclassified=1`, `actual`,
    `predicted` (classification) or `threshold` + `flagged=1|0` (anomaly): rows with every column;
    `?row=<index>`: just that row."""

    def get(self, request: Request, **kwargs) -> Response:
        workspace, run, dataset = self.workspace(request, kwargs)
        default = EVALUATION_CSV if run else dataset.csv_name
        start = max(0, _int(request.query_params.get("start"), "start") or 0)
        limit = min(500, max(1, _int(request.query_params.get("limit"), "limit") or 50))
        classes = (run.valid_dataset.class_names if run and run.valid_dataset else
                   dataset.class_names if dataset else None)
        page = table_page(workspace, request.query_params.get("csv") or default, start, limit,
                          row_filter(request.query_params), self.is_anomaly(run),
                          storage.user_dir(request.user.pk).resolve(), classes or None,
                          row=_int(request.query_params.get("row"), "row"))
        if page["filters"]["anomaly"]:  # the threshold the evaluation chose (or the user saved)
            page["threshold"] = run.metrics.get("chosen_threshold", run.metrics.get("threshold"))
        return Response(page)


class TableSaveView(TargetView):
    """`{"csv", "name", filters..., "rows"?: [indices]}`: the rows as a new CSV beside the source."""

    def post(self, request: Request, **kwargs) -> Response:
        workspace, run, _ = self.workspace(request, kwargs)
        rows = request.data.get("rows")
        if rows is not None and (not isinstance(rows, list) or
                                 not all(isinstance(i, int) and not isinstance(i, bool) for i in rows)):
            return field_errors({"rows": "must be a list of row indices"})
        default = EVALUATION_CSV if run else next(iter(workspace.csvs))
        result = services.save_rows(workspace, str(request.data.get("csv") or default),
                                    str(request.data.get("name") or "rows"), row_filter(request.data),
                                    self.is_anomaly(run), rows)
        return Response(result, status=status.HTTP_201_CREATED)


class TableToDatasetView(TargetView):
    """`{"csv", "name"}`: a new dataset from a CSV with an image column (a job; answers `{"job"}`)."""

    def post(self, request: Request, **kwargs) -> Response:
        workspace, run, dataset = self.workspace(request, kwargs)
        context = {"postprocess": "run", "run": run.pk} if run else {"postprocess": "dataset", "dataset": dataset.pk}
        job, errors = services.csv_to_dataset(request.user, workspace, context, str(request.data.get("csv") or ""),
                                              str(request.data.get("name") or ""))
        if errors:
            return field_errors({"name" if k == "name" else "csv" if k == "input" else k: v
                                 for k, v in errors.items()})
        return Response({"job": job.pk}, status=status.HTTP_201_CREATED)


class CellImageView(TargetView):
    """`?path=<cell>[&thumb=1]`: an image a table cell points at (inside this run's or dataset's files)."""

    def get(self, request: Request, **kwargs) -> FileResponse:
        workspace, _, _ = self.workspace(request, kwargs)
        cell = request.query_params.get("path", "")
        try:
            if request.query_params.get("thumb"):
                path, content_type = services.cell_thumbnail(workspace, request.user.pk, cell), "image/jpeg"
            else:
                path, content_type = services.cell_file(workspace, cell)
        except (UserError, OSError, ValueError) as exc:  # escaping paths look like missing files
            raise Http404 from exc
        response = FileResponse(open(path, "rb"), content_type=content_type)
        response["Cache-Control"] = "private, max-age=3600"
        response["Content-Security-Policy"] = "sandbox"  # whatever the bytes are, no script runs from them
        return response


class OutputFileView(TargetView):
    """An output file of this run or dataset, as a download."""

    def get(self, request: Request, relative: str, **kwargs) -> FileResponse:
        workspace, _, _ = self.workspace(request, kwargs)
        try:
            path = services.output_file(workspace, relative)
        except (UserError, OSError) as exc:
            raise Http404 from exc
        response = FileResponse(open(path, "rb"), as_attachment=True)
        response["Content-Security-Policy"] = "sandbox"
        return response


class PlotView(TargetView):
    """`?path=<name>.bokeh.json`: a plot output as a Bokeh json_item (`{"item", "csv"}`), embedded by
    the SPA with BokehJS; never an HTML page from our origin."""

    def get(self, request: Request, **kwargs) -> Response:
        workspace, _, _ = self.workspace(request, kwargs)
        relative = request.query_params.get("path", "")
        if not relative.endswith(".bokeh.json"):
            return field_errors({"path": "not a plot output"})
        try:
            data = json.loads(services.output_file(workspace, relative).read_text())
        except (UserError, OSError, ValueError) as exc:
            raise Http404 from exc
        return Response({"item": data.get("item", data), "csv": data.get("csv")})


@documented("run_evaluate")
class RunEvaluateView(APIView):
    """Evaluate the run's model again, as a job (returns the job to follow)."""

    def post(self, request: Request, run_id: int) -> Response:
        from nnc_web.jobs.serializers import JobSerializer

        job = services.evaluate_run(selectors.run_of(request.user, run_id))
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)


@documented("run_threshold")
class RunThresholdView(APIView):
    """`{"threshold": t}`: the anomaly threshold chosen in the evaluation, kept in the model bundle."""

    def post(self, request: Request, run_id: int) -> Response:
        run = services.set_threshold(selectors.run_of(request.user, run_id), request.data.get("threshold"))
        from nnc_web.projects.views import RunSerializer

        return Response(RunSerializer(run).data)


@documented("run_results")
class RunResultsView(APIView):
    """Rows of the run's output_result.csv with the validation image, filtered by `actual`,
    `predicted` (a confusion-matrix cell) or `misclassified=1`; paginated with start/limit.
    Anomaly runs: rows by descending score with heat maps; `threshold` + `flagged=1|0` keep the rows
    at/above or below the threshold."""

    def get(self, request: Request, run_id: int) -> Response:
        run = selectors.run_of(request.user, run_id)
        try:
            start = max(0, int(request.query_params.get("start", 0)))
            limit = min(500, max(1, int(request.query_params.get("limit", 50))))
            actual = request.query_params.get("actual")
            predicted = request.query_params.get("predicted")
            actual = int(actual) if actual not in (None, "") else None
            predicted = int(predicted) if predicted not in (None, "") else None
        except ValueError:
            return field_errors({"start": "start, limit, actual and predicted must be integers"})
        threshold, flagged = request.query_params.get("threshold"), request.query_params.get("flagged")
        try:
            threshold = float(threshold) if threshold not in (None, "") else None
        except ValueError:
            return field_errors({"threshold": "must be a number"})
        return Response(result_rows(run, start, limit, actual, predicted,
                                    request.query_params.get("misclassified") == "1", threshold,
                                    {"1": True, "0": False}.get(flagged or "")))


# One view class per target and route, so every operation has its own OpenAPI id (run_table_get, ...).
TARGET_ROUTES = (("postprocess/", PostprocessView, "postprocess"), ("csvs/", CsvListView, "csvs"),
                 ("table/", TableView, "table"), ("table/save/", TableSaveView, "table_save"),
                 ("table/to-dataset/", TableToDatasetView, "table_to_dataset"), ("image/", CellImageView, "image"),
                 ("plot/", PlotView, "plot"), ("outputs/<path:relative>", OutputFileView, "output"))


def target_urls() -> list:
    from django.urls import path

    urls = []
    for target, key, prefix in (("runs", "run_id", "run"), ("datasets", "dataset_id", "dataset")):
        for route, view, operation in TARGET_ROUTES:
            bound = documented(f"{prefix}_{operation}")(type(f"{prefix.title()}{view.__name__}", (view,), {}))
            urls.append(path(f"{target}/<int:{key}>/{route}", bound.as_view()))
    return urls
