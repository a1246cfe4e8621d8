"""Production settings: HTTPS-only cookies, HSTS, SSL redirect. Use behind a TLS proxy.

`DJANGO_SETTINGS_MODULE=nnc_web.settings_production python manage.py check --deploy` is clean.
"""
from nnc_web.settings import *  # noqa: F403

DEBUG = False
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_SSL_REDIRECT = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_REFERRER_POLICY = "same-origin"
