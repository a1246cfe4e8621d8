"""Runtime configuration read from the environment and the data dir (no Django imports).

Shared by the settings module, the launcher and the CLI so that all of them agree on where the
data lives and which broker to talk to.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Storage root (NNC_DATA_DIR, default ./var) - created on first use."""
    root = Path(os.environ.get("NNC_DATA_DIR") or BASE_DIR / "var").resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def broker_file() -> Path:
    """Where the launcher records the Redis URL of the running studio, for CLI commands."""
    return data_dir() / "run" / "redis_url"


def redis_url() -> str | None:
    """REDIS_URL if set, else the address the running launcher recorded, else None."""
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    recorded = broker_file()
    if recorded.exists():
        return recorded.read_text().strip() or None
    return None


def secret_key() -> str:
    """DJANGO_SECRET_KEY, or a random key generated once and kept in the data dir."""
    key = os.environ.get("DJANGO_SECRET_KEY")
    if key:
        return key
    path = data_dir() / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()
