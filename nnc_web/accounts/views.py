"""Account endpoints for the SPA (session + CSRF) and scripts (tokens)."""
from __future__ import annotations

from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from nnc_web.accounts import services
from nnc_web.api import documented


def _user_payload(user) -> dict:
    return {"id": user.id, "username": user.username, "email": user.email, "is_staff": user.is_staff,
            "has_token": Token.objects.filter(user=user).exists()}


def _error(exc: services.AccountError) -> Response:
    detail = exc.errors.get("detail") or "; ".join(exc.errors.values())
    fields = {k: [v] for k, v in exc.errors.items() if k != "detail"}
    return Response({"detail": detail, "errors": fields}, status=exc.status)


@method_decorator(ensure_csrf_cookie, name="get")
@documented("auth_me")
class MeView(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        if not request.user.is_authenticated:
            return Response({"authenticated": False})
        return Response({"authenticated": True, "user": _user_payload(request.user)})


@documented("auth_usage")
class UsageView(APIView):
    """The bytes the user's files take, and the storage quota (0: none)."""

    def get(self, request: Request) -> Response:
        from nnc_web import storage

        return Response(storage.usage(request.user.pk))


@method_decorator(csrf_protect, name="post")
@documented("auth_signup")
class SignUpView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    def post(self, request: Request) -> Response:
        try:
            user = services.sign_up(request._request, str(request.data.get("username", "")),
                                    str(request.data.get("password", "")), str(request.data.get("email", "")))
        except services.AccountError as exc:
            return _error(exc)
        return Response({"authenticated": True, "user": _user_payload(user)}, status=201)


@method_decorator(csrf_protect, name="post")
@documented("auth_login")
class SignInView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    def post(self, request: Request) -> Response:
        try:
            user = services.sign_in(request._request, str(request.data.get("username", "")),
                                    str(request.data.get("password", "")))
        except services.AccountError as exc:
            return _error(exc)
        return Response({"authenticated": True, "user": _user_payload(user)})


@documented("auth_logout")
class SignOutView(APIView):
    def post(self, request: Request) -> Response:
        services.sign_out(request._request)
        return Response({"authenticated": False})


@documented("auth_password")
class PasswordView(APIView):
    def post(self, request: Request) -> Response:
        try:
            services.change_password(request._request, str(request.data.get("old_password", "")),
                                     str(request.data.get("new_password", "")))
        except services.AccountError as exc:
            return _error(exc)
        return Response({"detail": "password changed"})


@documented("auth_token")
class TokenView(APIView):
    def post(self, request: Request) -> Response:
        return Response({"token": services.rotate_token(request.user)}, status=201)

    def delete(self, request: Request) -> Response:
        services.revoke_token(request.user)
        return Response(status=204)
