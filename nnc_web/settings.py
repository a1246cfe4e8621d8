"""Django settings for NNC Web. Everything a deployment changes comes from the environment.

- NNC_DATA_DIR: storage root (default ./var), holds the SQLite DB, users' files and run state.
- DATABASE_URL: PostgreSQL (or any dj-database-url URL); SQLite in the data dir by default.
- REDIS_URL: external Redis; by default the launcher starts an embedded one and records its URL.
- DJANGO_SECRET_KEY, NNC_ALLOWED_HOSTS (comma list), NNC_DEBUG=1.
"""
from __future__ import annotations

import os
from datetime import timedelta

import dj_database_url
import PIL.Image

from nnc_web import config

BASE_DIR = config.BASE_DIR
DATA_DIR = config.data_dir()

SECRET_KEY = config.secret_key()
DEBUG = os.environ.get("NNC_DEBUG") == "1"
ALLOWED_HOSTS = [h for h in os.environ.get("NNC_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("NNC_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_vite",
    "axes",
    "nnc_web.accounts",
    "nnc_web.jobs",
    "nnc_web.datasets",
    "nnc_web.projects",
    "nnc_web.evaluations",
    "nnc_web.plugins",
    "nnc_web.serving",
    # After our apps: our `runworker` (job workers) wins over Channels' (channel-layer consumers).
    "channels",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "nnc_web.security.ContentSecurityPolicyMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "nnc_web.urls"
ASGI_APPLICATION = "nnc_web.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}", conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout: the web server, workers and CLI write to the same file at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "build" / "collected"  # made by setup; shared by every data dir
# frontend/dist (the built SPA) and build/static (BokehJS copied from the wheel) appear after setup.
STATICFILES_DIRS = [p for p in (BASE_DIR / "static", BASE_DIR / "frontend" / "dist", BASE_DIR / "build" / "static")
                    if p.is_dir()]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
DJANGO_VITE = {
    "default": {
        "dev_mode": False,
        "manifest_path": BASE_DIR / "frontend" / "dist" / ".vite" / "manifest.json",
    }
}

# Uploads stream to disk; request bodies are never held in memory whole.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
NNC_MAX_UPLOAD_BYTES = int(os.environ.get("NNC_MAX_UPLOAD_BYTES", 20 * 1024**3))
# Large files arrive in chunks of at most this size: Daphne buffers each request body in memory.
NNC_UPLOAD_CHUNK_BYTES = int(os.environ.get("NNC_UPLOAD_CHUNK_BYTES", 8 * 1024**2))
# A chunked upload that received nothing for this long is removed (with its bytes) by the launcher.
# Per-user storage quota in bytes (uploads, datasets, runs, outputs); 0 = no quota.
NNC_USER_QUOTA_BYTES = int(os.environ.get("NNC_USER_QUOTA_BYTES", 0))
NNC_UPLOAD_ABANDONED_HOURS = float(os.environ.get("NNC_UPLOAD_ABANDONED_HOURS", 24))
# Server folders (os.pathsep-separated) whose data every signed-in user may import without uploading.
NNC_IMPORT_DIRS = [p for p in os.environ.get("NNC_IMPORT_DIRS", "").split(os.pathsep) if p]
# Pretrained weights imported with `manage.py import_weights` (default: <data dir>/models).
os.environ.setdefault("NNC_MODEL_DIR", str(DATA_DIR / "models"))
NNC_MAX_IMAGE_PIXELS = int(os.environ.get("NNC_MAX_IMAGE_PIXELS", 100_000_000))
# Pillow's own guard (warning above its limit, error above twice it) follows ours, so the documented
# cap is the one enforced (Pillow's default of ~89.5 Mpx would otherwise bite first).
PIL.Image.MAX_IMAGE_PIXELS = NNC_MAX_IMAGE_PIXELS
# Archive extraction caps (zip bombs): members, bytes actually written, written/archive-size ratio.
NNC_ARCHIVE_MAX_MEMBERS = int(os.environ.get("NNC_ARCHIVE_MAX_MEMBERS", 1_000_000))
NNC_ARCHIVE_MAX_BYTES = int(os.environ.get("NNC_ARCHIVE_MAX_BYTES", 200 * 1024**3))
NNC_ARCHIVE_MAX_RATIO = float(os.environ.get("NNC_ARCHIVE_MAX_RATIO", 200))
NNC_ARCHIVE_RATIO_SLACK_BYTES = int(os.environ.get("NNC_ARCHIVE_RATIO_SLACK_BYTES", 64 * 1024**2))

REST_FRAMEWORK = {
    # Token first so unauthenticated calls get 401 + WWW-Authenticate rather than a bare 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "nnc_web.api.exception_handler",
    "DEFAULT_PARSER_CLASSES": ["nnc_web.api.ObjectJSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# The schema and API docs need a signed-in user unless NNC_PUBLIC_API_DOCS=1 opens them.
SPECTACULAR_SETTINGS = {"TITLE": "NNC Web API", "VERSION": "0.1.0", "SERVE_PERMISSIONS": [
    "rest_framework.permissions.AllowAny" if os.environ.get("NNC_PUBLIC_API_DOCS") == "1"
    else "rest_framework.permissions.IsAuthenticated"]}

# Login throttling: lock a username+IP pair after 5 failures for 15 minutes.
AXES_FAILURE_LIMIT = int(os.environ.get("NNC_AXES_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_CALLABLE = "nnc_web.accounts.services.lockout_response"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

REDIS_URL = config.redis_url()
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # socket_timeout=None: redis-py's 5 s default kills idle consumers (channels_redis#422).
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": None}], "capacity": 1000},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Jobs: a running job refreshes its heartbeat this often; the reaper calls it lost after the grace.
NNC_HEARTBEAT_SECONDS = float(os.environ.get("NNC_HEARTBEAT_SECONDS", 5))
NNC_HEARTBEAT_GRACE_SECONDS = float(os.environ.get("NNC_HEARTBEAT_GRACE_SECONDS", 60))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    # dramatiq's "ready for action" line is INFO: the launcher waits for it.
    "loggers": {"nnc_web": {"level": "INFO"}, "dramatiq": {"level": "INFO"}},
}
