"""Upload and dataset endpoints (thin: parse -> service -> serialize)."""
from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, Http404, StreamingHttpResponse
from rest_framework import status
from rest_framework.parsers import BaseParser, DataAndFiles
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nnc_web.api import documented, field_errors
from nnc_web.datasets import imports, selectors, services
from nnc_web.datasets.serializers import DatasetSerializer, UploadSerializer
from nnc_web.engine.reporting import UserError
from nnc_web.projects.selectors import dataset_usage
from nnc_web.projects.services import release_dataset
from nnc_web.selectors import parse_id

MAX_PAGE = 500


class RawBodyParser(BaseParser):
    """Accept any body without reading it: the view streams it to disk itself.

    DRF parses the body when its CSRF check touches `request.POST`; without this, a raw upload
    would answer 415 or be read into memory.
    """

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None) -> DataAndFiles:
        return DataAndFiles({}, {})


@documented("uploads")
class UploadListView(APIView):
    """POST the raw file body (any content type) with `?filename=`; streamed straight to disk."""

    parser_classes = [RawBodyParser]

    def get(self, request: Request) -> Response:
        return Response({"results": UploadSerializer(selectors.uploads_of(request.user)[:200], many=True).data})

    def post(self, request: Request) -> Response:
        filename = request.query_params.get("filename") or request.headers.get("X-Filename", "")
        if not filename:
            return field_errors({"filename": "give the file name as ?filename="})
        upload = services.save_upload(request.user, filename, request._request)
        return Response(UploadSerializer(upload).data, status=status.HTTP_201_CREATED)


def _conflict(exc: services.UploadConflict) -> Response:
    return Response({"detail": str(exc), "errors": {}, "received": exc.received},
                    status=status.HTTP_409_CONFLICT)


@documented("upload_start")
class UploadStartView(APIView):
    """Begin a chunked upload: `{"filename": ..., "size": bytes}` -> the upload and the chunk size."""

    def post(self, request: Request) -> Response:
        try:
            size = parse_id(request.data.get("size"))
        except ValueError:
            return field_errors({"size": "give the file size in bytes (a whole number)"})
        upload = services.start_chunked_upload(request.user, str(request.data.get("filename", "")), size)
        return Response({**UploadSerializer(upload).data, "chunk_size": settings.NNC_UPLOAD_CHUNK_BYTES},
                        status=status.HTTP_201_CREATED)


@documented("upload_chunk")
class UploadChunkView(APIView):
    """PUT the raw bytes that start at `?offset=`; 409 answers with the offset the server has."""

    parser_classes = [RawBodyParser]

    def put(self, request: Request, upload_id: int) -> Response:
        upload = selectors.upload_of(request.user, upload_id)
        try:
            offset = int(request.query_params.get("offset", ""))
        except ValueError:
            return field_errors({"offset": "give the chunk's byte offset as ?offset="})
        try:
            upload = services.append_chunk(upload, offset, request._request)
        except services.UploadConflict as exc:
            return _conflict(exc)
        return Response(UploadSerializer(upload).data)


@documented("upload_finish")
class UploadFinishView(APIView):
    def post(self, request: Request, upload_id: int) -> Response:
        try:
            upload = services.finish_upload(selectors.upload_of(request.user, upload_id))
        except services.UploadConflict as exc:
            return _conflict(exc)
        return Response(UploadSerializer(upload).data)


@documented("upload")
class UploadDetailView(APIView):
    def get(self, request: Request, upload_id: int) -> Response:
        return Response(UploadSerializer(selectors.upload_of(request.user, upload_id)).data)

    def delete(self, request: Request, upload_id: int) -> Response:
        services.delete_upload(selectors.upload_of(request.user, upload_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


@documented("imports")
class ImportListView(APIView):
    """Folders staff configured in NNC_IMPORT_DIRS: `?path=<root>/<folder>` lists one folder."""

    def get(self, request: Request) -> Response:
        return Response(imports.list_imports(request.query_params.get("path", "")))


@documented("datasets")
class DatasetListView(APIView):
    def get(self, request: Request) -> Response:
        return Response({"results": DatasetSerializer(selectors.datasets_of(request.user), many=True).data})


@documented("dataset")
class DatasetDetailView(APIView):
    def get(self, request: Request, dataset_id: int) -> Response:
        return Response(DatasetSerializer(selectors.dataset_of(request.user, dataset_id)).data)

    def delete(self, request: Request, dataset_id: int) -> Response:
        """Deletes it even when projects or runs use it (`usage/` says which: the SPA asks first);
        their pages then say it was deleted."""
        dataset = selectors.dataset_of(request.user, dataset_id)
        release_dataset(dataset)
        services.delete_dataset(dataset)
        return Response(status=status.HTTP_204_NO_CONTENT)


@documented("dataset_usage")
class DatasetUsageView(APIView):
    """The projects and runs that use the dataset, with the role it has there (training, validation)."""

    def get(self, request: Request, dataset_id: int) -> Response:
        return Response(dataset_usage(selectors.dataset_of(request.user, dataset_id)))


@documented("dataset_rows")
class DatasetRowsView(APIView):
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = selectors.dataset_of(request.user, dataset_id)
        try:
            start = max(0, int(request.query_params.get("start", 0)))
            limit = min(MAX_PAGE, max(1, int(request.query_params.get("limit", 50))))
        except ValueError:
            return field_errors({"start": "start and limit must be integers"})
        return Response(services.dataset_page(dataset, start, limit))


@documented("dataset_file")
class DatasetFileView(APIView):
    """A file the dataset's CSV references; `?thumb=1` gives a small JPEG, `?overlay=1` a mask in colour."""

    def get(self, request: Request, dataset_id: int, relative: str) -> FileResponse:
        dataset = selectors.dataset_of(request.user, dataset_id)
        try:
            if request.query_params.get("overlay"):
                path = services.mask_overlay(dataset, relative)
            elif request.query_params.get("thumb"):
                path = services.thumbnail(dataset, relative)
            else:
                path = services.dataset_file(dataset, relative)
        except (UserError, ValueError, OSError) as exc:  # escaping paths look like missing files
            raise Http404 from exc
        response = FileResponse(open(path, "rb"))
        response["Cache-Control"] = "private, max-age=86400"
        return response


@documented("dataset_download")
class DatasetDownloadView(APIView):
    def get(self, request: Request, dataset_id: int) -> StreamingHttpResponse:
        dataset = selectors.dataset_of(request.user, dataset_id)
        response = StreamingHttpResponse(services.export_zip(dataset), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{dataset.name}.zip"'
        return response
