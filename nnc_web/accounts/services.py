"""Account rules: sign-up, sign-in with throttling, password change, API tokens."""
from __future__ import annotations

import re

from django.contrib.auth import authenticate, get_user_model, login, logout, update_session_auth_hash
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from rest_framework.authtoken.models import Token

User = get_user_model()
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{3,40}$")


class AccountError(Exception):
    def __init__(self, errors: dict[str, str], status: int = 400) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors
        self.status = status


def sign_up(request: HttpRequest, username: str, password: str, email: str = "") -> User:
    errors: dict[str, str] = {}
    if not USERNAME_PATTERN.match(username or ""):
        errors["username"] = "use 3-40 letters, digits, '.', '_' or '-'"
    elif User.objects.filter(username__iexact=username).exists():
        errors["username"] = "this username is taken"
    candidate = User(username=username, email=email)
    try:
        validate_password(password or "", candidate)
    except ValidationError as exc:
        errors["password"] = " ".join(exc.messages)
    if errors:
        raise AccountError(errors)
    user = User.objects.create_user(username=username, password=password, email=email)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return user


def sign_in(request: HttpRequest, username: str, password: str) -> User:
    user = authenticate(request, username=username, password=password)
    if getattr(request, "axes_locked_out", False):
        raise AccountError(
            {"detail": "too many failed sign-in attempts: try again in 15 minutes"}, status=429
        )
    if user is None or not user.is_active:
        raise AccountError({"password": "wrong username or password"})
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return user


def sign_out(request: HttpRequest) -> None:
    logout(request)


def change_password(request: HttpRequest, old_password: str, new_password: str) -> None:
    user = request.user
    if not user.check_password(old_password or ""):
        raise AccountError({"old_password": "the current password is wrong"})
    try:
        validate_password(new_password or "", user)
    except ValidationError as exc:
        raise AccountError({"new_password": " ".join(exc.messages)}) from exc
    user.set_password(new_password)
    user.save(update_fields=["password"])
    update_session_auth_hash(request, user)  # keep this session signed in
    revoke_token(user)  # a token made under the old password (a leaked one, perhaps) stops working


def rotate_token(user: User) -> str:
    """Replace the user's API token with a fresh one (shown once)."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user).key


def revoke_token(user: User) -> None:
    Token.objects.filter(user=user).delete()


def ensure_staff_user(username: str, password: str, email: str = "") -> tuple[User, bool]:
    """Create (or reset the password of) a staff superuser; idempotent for servers and tests."""
    user, created = User.objects.get_or_create(username=username, defaults={"email": email})
    user.is_staff = True
    user.is_superuser = True
    user.set_password(password)
    user.save()
    return user, created


def lockout_response(request: HttpRequest, original_response=None, credentials=None):
    """django-axes' lockout answer in the API's JSON error format (AXES_LOCKOUT_CALLABLE)."""
    from django.http import JsonResponse

    return JsonResponse({"detail": "too many failed sign-in attempts: try again in 15 minutes", "errors": {}},
                        status=429)
