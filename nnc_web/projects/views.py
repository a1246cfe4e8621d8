from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nnc_web.api import documented, field_errors
from nnc_web.projects import services
from nnc_web.projects.models import Project
from nnc_web.selectors import get_or_404


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "name", "description", "train_dataset", "valid_dataset", "config", "created_at"]


def _project_of(user, project_id: int) -> Project:
    return get_or_404(Project.objects.filter(owner=user), project_id)


@documented("projects")
class ProjectListView(APIView):
    def get(self, request: Request) -> Response:
        projects = Project.objects.filter(owner=request.user)
        return Response({"results": ProjectSerializer(projects, many=True).data})

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
        return Response(ProjectSerializer(_project_of(request.user, project_id)).data)

    def delete(self, request: Request, project_id: int) -> Response:
        _project_of(request.user, project_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


@documented("models")
class ModelListView(APIView):
    """The model store: every backbone and whether its weights are on this machine."""

    def get(self, request: Request) -> Response:
        from nnc_web.engine import model_store

        return Response({"results": [
            {"id": b.id, "title": b.title, "available": model_store.is_available(b.id), "input_size": b.input_size}
            for b in model_store.BACKBONES.values()]})
