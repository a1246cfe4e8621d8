from __future__ import annotations

from django.http import FileResponse, Http404, StreamingHttpResponse
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nnc_web.api import documented, field_errors
from nnc_web.datasets.zipstream import stream_zip
from nnc_web.engine.reporting import UserError
from nnc_web.engine.safe_paths import safe_join
from nnc_web.projects import selectors, services
from nnc_web.projects.config import CONFIG_PARAMS
from nnc_web.projects.plots import curves_item
from nnc_web.projects.serializers import ProjectSerializer, RunSerializer


@documented("projects")
class ProjectListView(APIView):
    def get(self, request: Request) -> Response:
        return Response({"results": ProjectSerializer(selectors.projects_of(request.user), many=True).data})

    def post(self, request: Request) -> Response:
        project, errors = services.create_project(
            request.user, str(request.data.get("name", "")), str(request.data.get("description", "")),
            request.data.get("train_dataset"), request.data.get("valid_dataset"))
        if errors:
            return field_errors(errors)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


@documented("project")
class ProjectDetailView(APIView):
    def get(self, request: Request, project_id: int) -> Response:
        return Response(ProjectSerializer(selectors.project_of(request.user, project_id)).data)

    def patch(self, request: Request, project_id: int) -> Response:
        project = selectors.project_of(request.user, project_id)
        errors = services.update_project(project, request.data)
        if errors:
            return field_errors(errors)
        return Response(ProjectSerializer(project).data)

    def delete(self, request: Request, project_id: int) -> Response:
        services.delete_project(selectors.project_of(request.user, project_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@documented("project_config_schema")
class ConfigSchemaView(APIView):
    def get(self, request: Request) -> Response:
        return Response({"results": [p.as_dict() for p in CONFIG_PARAMS]})


@documented("project_runs")
class RunListView(APIView):
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.project_of(request.user, project_id)
        return Response({"results": RunSerializer(project.runs.select_related("job", "project"), many=True).data})

    def post(self, request: Request, project_id: int) -> Response:
        """`{"plugin", "params", "config"?, "name"?}`: `config` is saved to the project first, so the run
        uses the settings the form showed. The answer's `warnings` are what is allowed but probably not
        meant (validating on the training data); the job's log starts with them too."""
        project = selectors.project_of(request.user, project_id)
        run, errors = services.start_run(project, str(request.data.get("plugin", "")), request.data.get("params") or {},
                                         config=request.data.get("config"), name=request.data.get("name"))
        if errors:
            return field_errors(errors)
        return Response({**RunSerializer(run).data, "warnings": services.dataset_warnings(project)},
                        status=status.HTTP_201_CREATED)


@documented("run")
class RunDetailView(APIView):
    def get(self, request: Request, run_id: int) -> Response:
        return Response(RunSerializer(selectors.run_of(request.user, run_id)).data)

    def patch(self, request: Request, run_id: int) -> Response:
        """`{"name": ...}`: rename the run (names are unique within the project)."""
        run = selectors.run_of(request.user, run_id)
        errors = services.rename_run(run, request.data.get("name", ""))
        if errors:
            return field_errors(errors)
        return Response(RunSerializer(run).data)

    def delete(self, request: Request, run_id: int) -> Response:
        """The run and its folder; a job still training it (or working on it) is cancelled first."""
        services.delete_run(selectors.run_of(request.user, run_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@documented("run_resume")
class RunResumeView(APIView):
    def post(self, request: Request, run_id: int) -> Response:
        run = services.resume_run(selectors.run_of(request.user, run_id))
        return Response(RunSerializer(run).data)


@documented("run_file")
class RunFileView(APIView):
    """A file of the run folder: output_result.csv, metrics.json, model/manifest.json, ..."""

    def get(self, request: Request, run_id: int, relative: str) -> FileResponse:
        run = selectors.run_of(request.user, run_id)
        try:
            path = safe_join(run.folder(), relative)
        except UserError as exc:
            raise Http404 from exc
        if not path.is_file() or path.name in ("checkpoint.pt", "best.pt"):
            raise Http404
        response = FileResponse(open(path, "rb"), as_attachment=True)
        return response


@documented("run_bundle")
class RunBundleView(APIView):
    """The model bundle (manifest.json + weights.safetensors) as a zip."""

    def get(self, request: Request, run_id: int) -> StreamingHttpResponse:
        run = selectors.run_of(request.user, run_id)
        folder = run.folder() / "model"
        if not (folder / "manifest.json").exists():
            raise Http404
        # An export being written (its .partial file, renamed when done) is not part of the bundle yet.
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix != ".partial")
        response = StreamingHttpResponse(stream_zip((f"run{run.pk}-model/{p.name}", p) for p in files),
                                         content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="run{run.pk}-model.zip"'
        return response


@documented("models")
class ModelListView(APIView):
    """The model store: every backbone and whether its weights are on this machine, then the Hugging Face
    models of DETR and SegFormer (`plugin` and `param`: the training plugin whose `pretrained` needs them)."""

    def get(self, request: Request) -> Response:
        from nnc_web.engine import hf_weights, model_store

        return Response({"results": [
            *({"id": b.id, "title": b.title, "available": model_store.is_available(b.id), "input_size": b.input_size}
              for b in model_store.BACKBONES.values()),
            *hf_weights.listing()]})


@documented("curves")
class CurvesView(APIView):
    """`?runs=1,2`: the learning curves of the user's runs, overlaid (Bokeh json_item)."""

    def get(self, request: Request) -> Response:
        try:
            ids = [int(i) for i in request.query_params.get("runs", "").split(",") if i]
        except ValueError:
            return field_errors({"runs": "comma-separated run ids"})
        runs = [selectors.run_of(request.user, i) for i in ids[:10]]
        if not runs:
            return field_errors({"runs": "give at least one run id"})
        return Response(curves_item(runs))


@documented("run_export")
class RunExportView(APIView):
    """`?to=torchscript|onnx`: the trained model exported (made once, kept in the run folder).
    (Not `?format=`: DRF reserves that name for choosing a renderer.)"""

    def get(self, request: Request, run_id: int) -> FileResponse:
        run = selectors.run_of(request.user, run_id)
        export_format = request.query_params.get("to", "torchscript")
        if export_format not in ("torchscript", "onnx"):
            return field_errors({"to": "torchscript or onnx"})
        path = services.export_run(run, export_format)
        return FileResponse(open(path, "rb"), as_attachment=True, filename=f"run{run.pk}-{path.name}")
