"""Sign-up, sign-in, sign-out, password change, API tokens, throttling, CSRF."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def csrf_client() -> APIClient:
    client = APIClient(enforce_csrf_checks=True)
    client.get("/api/auth/me/")
    client.credentials(HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    return client


def test_sign_up_signs_in_and_me_reports_it():
    client = csrf_client()
    response = client.post("/api/auth/signup/", {"username": "carol", "password": PASSWORD}, format="json")
    assert response.status_code == 201
    me = client.get("/api/auth/me/").json()
    assert me["authenticated"] and me["user"]["username"] == "carol"


def test_sign_up_errors_are_per_field():
    client = csrf_client()
    response = client.post("/api/auth/signup/", {"username": "x", "password": "123"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert set(body["errors"]) == {"username", "password"} and body["detail"]
    get_user_model().objects.create_user("dave", password=PASSWORD)
    taken = client.post("/api/auth/signup/", {"username": "Dave", "password": PASSWORD}, format="json")
    assert taken.json()["errors"]["username"] == ["this username is taken"]


def test_login_without_csrf_token_is_refused(alice):
    client = APIClient(enforce_csrf_checks=True)
    response = client.post("/api/auth/login/", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 403


def test_sign_in_wrong_password_then_right_then_sign_out(alice):
    client = csrf_client()
    bad = client.post("/api/auth/login/", {"username": "alice", "password": "nope"}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"]["password"] == ["wrong username or password"]
    good = client.post("/api/auth/login/", {"username": "alice", "password": PASSWORD}, format="json")
    assert good.status_code == 200
    client.credentials(HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert client.post("/api/auth/logout/").status_code == 200
    assert client.get("/api/auth/me/").json() == {"authenticated": False}
    assert client.get("/api/datasets/").status_code == 401


def test_login_is_throttled_after_repeated_failures(alice, settings):
    client = csrf_client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post("/api/auth/login/", {"username": "alice", "password": "x"}, format="json").status_code == 400
    locked = client.post("/api/auth/login/", {"username": "alice", "password": "x"}, format="json")
    assert locked.status_code == 429 and "too many" in locked.json()["detail"]
    still = client.post("/api/auth/login/", {"username": "alice", "password": PASSWORD}, format="json")
    assert still.status_code == 429  # even the right password waits out the lock


def test_password_change_keeps_session_and_checks_old_password(alice, client_for):
    client = client_for(alice)
    wrong = client.post("/api/auth/password/", {"old_password": "x", "new_password": "Another-Pass-77"})
    assert wrong.status_code == 400 and "old_password" in wrong.json()["errors"]
    weak = client.post("/api/auth/password/", {"old_password": PASSWORD, "new_password": "123"})
    assert weak.status_code == 400 and "new_password" in weak.json()["errors"]
    ok = client.post("/api/auth/password/", {"old_password": PASSWORD, "new_password": "Another-Pass-77"})
    assert ok.status_code == 200
    assert client.get("/api/auth/me/").json()["authenticated"]
    alice.refresh_from_db()
    assert alice.check_password("Another-Pass-77")


def test_api_token_authenticates_scripts_and_can_be_revoked(alice, client_for):
    token = client_for(alice).post("/api/auth/token/").json()["token"]
    script = APIClient()
    script.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert script.get("/api/datasets/").status_code == 200
    client_for(alice).delete("/api/auth/token/")
    assert script.get("/api/datasets/").status_code == 401


def test_ensure_staff_user_command_is_idempotent(monkeypatch):
    monkeypatch.setenv("NNC_ADMIN_USERNAME", "root")
    monkeypatch.setenv("NNC_ADMIN_PASSWORD", "Admin-Pass-99")
    call_command("ensure_staff_user")
    call_command("ensure_staff_user")
    user = get_user_model().objects.get(username="root")
    assert user.is_staff and user.is_superuser and user.check_password("Admin-Pass-99")


def test_changing_the_password_revokes_the_api_token(alice, client_for):
    from rest_framework.test import APIClient

    client = client_for(alice)
    token = client.post("/api/auth/token/").json()["token"]
    script = APIClient()
    script.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert script.get("/api/datasets/").status_code == 200
    changed = client.post("/api/auth/password/", {"old_password": "Correct-Horse-42",
                                                  "new_password": "Another-Horse-43"}, format="json")
    assert changed.status_code in (200, 204), changed.content
    assert script.get("/api/datasets/").status_code == 401


def test_schema_and_docs_need_sign_in_and_pages_carry_a_csp(client_for, alice):
    anonymous = client_for(None)
    assert anonymous.get("/api/schema/").status_code in (401, 403)
    assert client_for(alice).get("/api/schema/").status_code == 200
    page = anonymous.get("/")
    policy = page["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-eval'" not in policy and "frame-ancestors 'none'" in policy


def test_the_documented_pixel_cap_is_the_one_enforced(tmp_path, settings):
    from PIL import Image

    from nnc_web.engine.imaging import open_checked

    path = tmp_path / "big.png"
    Image.new("L", (10_000, 9_500)).save(path)  # 95 Mpx: over Pillow's default 89.5 Mpx, under our 100 Mpx
    with open_checked(path, settings.NNC_MAX_IMAGE_PIXELS) as image:
        assert image.size == (10_000, 9_500)


def test_storage_quota_refuses_uploads_that_do_not_fit_and_usage_is_shown(alice, client_for, settings, tmp_path):
    from tests.api.helpers import digits_zip, upload

    client = client_for(alice)
    assert client.get("/api/auth/usage/").json() == {"used_bytes": 0, "quota_bytes": 0}
    archive = digits_zip(tmp_path)
    assert upload(client, archive).status_code == 201  # no quota by default
    used = client.get("/api/auth/usage/").json()["used_bytes"]
    assert used >= archive.stat().st_size
    settings.NNC_USER_QUOTA_BYTES = used + archive.stat().st_size // 2
    refused = upload(client, archive)
    assert refused.status_code == 400 and "storage quota" in refused.json()["detail"]
    chunked = client.post("/api/uploads/start/", {"filename": "big.zip", "size": archive.stat().st_size},
                          format="json")
    assert chunked.status_code == 400 and "storage quota" in chunked.json()["detail"]
    assert client.get("/api/auth/usage/").json()["used_bytes"] == used  # nothing of the refused ones stays
    assert client_for(None).get("/api/auth/usage/").status_code in (401, 403)
