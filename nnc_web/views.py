"""The SPA shell and a health probe."""
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie


@ensure_csrf_cookie
def spa(request: HttpRequest, path: str = "") -> HttpResponse:
    return render(request, "index.html")


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})
