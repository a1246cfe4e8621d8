from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nnc_web.api import documented
from nnc_web.plugins.registry import ordered


@documented("plugins")
class PluginListView(APIView):
    def get(self, request: Request) -> Response:
        kind = request.query_params.get("kind")
        plugins = [p.as_dict() for p in ordered() if kind in (None, p.kind)]
        return Response({"results": plugins})
