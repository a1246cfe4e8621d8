"""Content-Security-Policy for every page: scripts only from our origin (the SPA bundle and
BokehJS), no inline script, no plugins, no framing. Bokeh styles its widgets with inline <style>
elements, hence 'unsafe-inline' for styles only."""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self' ws: wss:",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
])


# drf-spectacular's Swagger page is one inline script (signed-in users only, see SPECTACULAR_SETTINGS).
EXEMPT = ("/api/docs/",)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(EXEMPT):
            response.headers.setdefault("Content-Security-Policy", POLICY)  # stricter per-view policies win
        return response
