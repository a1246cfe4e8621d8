"""Endpoint tokens on the predict call: `Authorization: Bearer nep_...` (or `Token nep_...`). Other
credentials fall through to the account's token and the session, as everywhere in the API."""
from __future__ import annotations

from rest_framework import authentication, exceptions

from nnc_web.serving import selectors


class EndpointTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower().decode(errors="replace") not in self.keywords:
            return None
        try:
            key = parts[1].decode()
        except UnicodeDecodeError:
            return None
        if not key.startswith(selectors.TOKEN_PREFIX):
            if parts[0].lower() == b"bearer":
                raise exceptions.AuthenticationFailed("invalid token")
            return None  # an account token: TokenAuthentication decides
        token = selectors.endpoint_token(key)
        if token is None or not token.endpoint.owner.is_active:
            raise exceptions.AuthenticationFailed("invalid or revoked endpoint token")
        return token.endpoint.owner, token

    def authenticate_header(self, request) -> str:
        return "Token"


try:  # the OpenAPI schema's description of endpoint tokens
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    class EndpointTokenScheme(OpenApiAuthenticationExtension):
        target_class = "nnc_web.serving.authentication.EndpointTokenAuthentication"
        name = "endpointToken"

        def get_security_definition(self, auto_schema):
            return {"type": "http", "scheme": "bearer",
                    "description": "a token made for one endpoint (POST /api/endpoints/<id>/tokens/): "
                                   "`Authorization: Bearer nep_...`"}
except ImportError:  # pragma: no cover - drf-spectacular is a dependency
    pass
