"""Shared fixtures: users and API clients, and the real stack (Redis + worker + Daphne) for live tests."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
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


def start_stack(data_dir: Path, port: int, extra_env: dict | None = None) -> tuple[subprocess.Popen, dict]:
    """Run `manage.py runstack` in a subprocess with the real settings; wait for its ready file."""
    ready = data_dir / "ready.json"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DRAMATIQ_BROKER")}
    env.update({"DJANGO_SETTINGS_MODULE": "nnc_web.settings", "NNC_DATA_DIR": str(data_dir),
                "PYTHONUNBUFFERED": "1", **(extra_env or {})})
    log = open(data_dir / "launcher.log", "w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runstack", "--port", str(port), "--ready-file", str(ready),
         "--worker-threads", "2"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("stack did not start:\n" + (data_dir / "launcher.log").read_text()[-4000:])
        time.sleep(0.2)
    return process, json.loads(ready.read_text())


def stop_stack(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory):
    from nnc_web.launcher import free_port

    data_dir = tmp_path_factory.mktemp("live")
    process, info = start_stack(data_dir, free_port())
    info["data_dir"] = data_dir
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

    def sign_up(self, username: str) -> LiveClient:
        response = self.post("/api/auth/signup/", json={"username": username, "password": PASSWORD})
        assert response.status_code == 201, response.text
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
