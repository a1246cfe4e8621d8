"""A bounded Schemathesis run over our OpenAPI schema, in process against the Django app, signed in
with a token: whatever the fuzzer sends to any operation, the answer is never a 5xx."""
from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.django_db

EXAMPLES = 15  # per operation and method: about 70 of them, about a thousand requests in all


def test_no_operation_answers_a_server_error(alice, tmp_path):
    from drf_spectacular.generators import SchemaGenerator
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from tests.api.helpers import create_dataset

    client = APIClient()
    client.force_authenticate(alice)
    create_dataset(client, tmp_path)  # real objects behind some of the ids the fuzzer tries
    schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
    schema.app = get_wsgi_application()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50
    failures = []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            # The schema's security schemes make the fuzzer invent credentials: sign in for real.
            invented = {k: v for k, v in (case.headers or {}).items() if k.lower() not in ("authorization", "cookie")}
            # The fuzzer may rotate or revoke the token (auth endpoints): take the current one each time.
            token = Token.objects.get_or_create(user=alice)[0].key
            case.headers = {**invented, "Authorization": f"Token {token}"}
            case.cookies = {}
            case.call_and_validate(checks=[not_a_server_error])

        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:400]}")
    assert not failures, "\n".join(failures)
