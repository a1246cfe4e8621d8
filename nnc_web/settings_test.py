"""Settings for pytest: temp data dir, in-memory channel layer, Dramatiq stub broker.

Live-stack tests start real processes with the real settings module instead.
"""
import os
import tempfile

os.environ.setdefault("NNC_DATA_DIR", tempfile.mkdtemp(prefix="nnc-test-"))
os.environ["DRAMATIQ_BROKER"] = "stub"
os.environ.pop("REDIS_URL", None)

from nnc_web.settings import *  # noqa: E402,F403

if not os.environ.get("DATABASE_URL"):  # with DATABASE_URL (e.g. PostgreSQL) Django makes test_<name>
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
