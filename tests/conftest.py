"""Shared fixtures: users and API clients, and the real stack (Redis + worker + Daphne) for live tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from tests.stack import ROOT, start_stack, stop_stack  # noqa: F401 - re-exported for tests

ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "Correct-Horse-42"


@pytest.fixture(autouse=True)
def _own_data_dir(settings, tmp_path):
    """Each test gets its own storage root (DB ids restart after every rollback)."""
    settings.DATA_DIR = tmp_path / "data"


@pytest.fixture
def make_user(db):
    from django.contrib.auth import get_user_model

    def make(username: str = "alice", **extra):
        return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def client_for():
    from rest_framework.test import APIClient

    def make(user=None, csrf: bool = False) -> APIClient:
        client = APIClient(enforce_csrf_checks=csrf)
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture(scope="session")
def private_postgres():
    """One private PostgreSQL server for the session's live tests (each takes its own database)."""
    import tempfile

    from tests.postgres import PrivatePostgres

    server = PrivatePostgres(Path(tempfile.mkdtemp(prefix="nnc-pg-")))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory, request):
    """The studio most live and browser tests share, on PostgreSQL as deployed (every state change, JSON
    field and migration proven on it): DATABASE_URL's when the suite is given one, else a private server's;
    the restart tests start their own on SQLite, the default."""
    from nnc_web.launcher import free_port

    data_dir = tmp_path_factory.mktemp("live")
    # Small chunks so the browser's upload of a test archive takes several requests; a server
    # folder that tests fill to import from.
    server_data = data_dir / "server-data"
    server_data.mkdir()
    database_url = os.environ.get("DATABASE_URL") or request.getfixturevalue("private_postgres").database("live")
    process, info = start_stack(data_dir, free_port(), extra_env={
        "DATABASE_URL": database_url, "NNC_UPLOAD_CHUNK_BYTES": "65536",
        "NNC_IMPORT_DIRS": str(server_data),
        "NNC_HEARTBEAT_SECONDS": "1", "NNC_HEARTBEAT_GRACE_SECONDS": "4"})  # lost workers found fast
    info["data_dir"] = data_dir
    info["database_url"] = database_url  # what a manage.py command against this studio needs too
    info["server_data"] = server_data
    info["process"] = process
    yield info
    stop_stack(process)


class LiveClient(requests.Session):
    """A signed-in HTTP session against the live stack (cookies + CSRF like the SPA)."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base.rstrip("/")
        self.get(self.base + "/api/auth/me/").raise_for_status()

    def request(self, method, url, *args, **kwargs):
        if url.startswith("/"):
            url = self.base + url
        headers = kwargs.pop("headers", None) or {}
        if method.upper() != "GET":
            headers.setdefault("X-CSRFToken", self.cookies.get("csrftoken", ""))
            headers.setdefault("Referer", self.base + "/")
        return super().request(method, url, *args, headers=headers, **kwargs)

    def upload(self, path: Path) -> dict:
        """The chunked upload protocol, as the SPA does it."""
        started = self.post("/api/uploads/start/", json={"filename": path.name, "size": path.stat().st_size})
        assert started.status_code == 201, started.text
        upload, chunk = started.json(), started.json()["chunk_size"]
        with open(path, "rb") as handle:
            while data := handle.read(chunk):
                response = self.put(f"/api/uploads/{upload['id']}/chunk/?offset={handle.tell() - len(data)}",
                                    data=data, headers={"Content-Type": "application/octet-stream"})
                assert response.status_code == 200, response.text
        finished = self.post(f"/api/uploads/{upload['id']}/finish/")
        assert finished.status_code == 200, finished.text
        return finished.json()

    def sign_up(self, username: str) -> LiveClient:
        response = self.post("/api/auth/signup/", json={"username": username, "password": PASSWORD})
        assert response.status_code == 201, response.text
        return self

    def sign_in(self, username: str) -> LiveClient:
        response = self.post("/api/auth/login/", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return self


_user_counter = iter(range(1, 10_000))


@pytest.fixture
def live_client(live_stack):
    def make(prefix: str = "user") -> LiveClient:
        return LiveClient(live_stack["url"]).sign_up(f"{prefix}{next(_user_counter)}{os.getpid()}")

    return make


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    executable = "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.fail("Debian's chromium is missing: ./dev.sh test installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
        yield browser
        browser.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
