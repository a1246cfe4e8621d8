"""Endpoint rules: an endpoint serves a run of the same owner that has a servable bundle; names are
unique per owner; limits are bounded; tokens are random, shown once, stored as digests. A call is
checked here (size, JSON, instances, images' headers) and handed to the serving process; the web
process never loads a model. The serving process writes the statistics (`save_tallies`)."""
from __future__ import annotations

import json
import re
import secrets
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.http import Http404

from nnc_web import config
from nnc_web.engine.errors import UserError
from nnc_web.engine.serving.instances import RequestError, parse_json
from nnc_web.engine.serving.predictor import check_instances, read_manifest, spec_for
from nnc_web.projects.selectors import run_of
from nnc_web.selectors import parse_id
from nnc_web.serving import conf, selectors
from nnc_web.serving.models import Endpoint, EndpointStats, EndpointToken
from nnc_web.serving.stats import Tally
from nnc_web.serving.transport import RedisTransport, ServingTimeout, ServingUnavailable

NAME = re.compile(r"^[^\x00-\x1f\x7f/\\]{1,64}$")


def _limit_bounds() -> dict[str, tuple[int, int]]:
    return {"max_instances": (1, conf.MAX_INSTANCES), "max_body_bytes": (1024, conf.MAX_BODY_BYTES),
            "max_image_pixels": (1, settings.NNC_MAX_IMAGE_PIXELS), "rate_per_minute": (1, 1_000_000)}


def _clean_limits(data: dict, errors: dict[str, str]) -> dict[str, int]:
    cleaned = {}
    for name, (low, high) in _limit_bounds().items():
        if name not in data:
            continue
        try:
            value = parse_id(data[name])
        except ValueError:
            errors[name] = "must be a whole number"
            continue
        if not low <= value <= high:
            errors[name] = f"must be between {low} and {high}"
        else:
            cleaned[name] = value
    return cleaned


def _name_error(owner, name: str, endpoint: Endpoint | None = None) -> str | None:
    if not NAME.match(name):
        return "give a name of 1 to 64 characters, without '/' or '\\'"
    taken = Endpoint.objects.filter(owner=owner, name=name)
    if endpoint is not None:
        taken = taken.exclude(pk=endpoint.pk)
    return "you already have an endpoint with this name" if taken.exists() else None


def _free_name(owner, base: str) -> str:
    taken = set(Endpoint.objects.filter(owner=owner, name__startswith=base[:60]).values_list("name", flat=True))
    name, number = base[:64], 1
    while name in taken:
        number += 1
        name = f"{base[:58]} ({number})"
    return name


def servable_problem(run) -> str | None:
    """Why a run cannot be served, or None."""
    try:
        spec_for(read_manifest(run.folder() / "model"))
    except UserError as exc:
        return str(exc)
    return None


def create_endpoint(owner, data: dict) -> tuple[Endpoint | None, dict[str, str]]:
    """`{"run", "name"?, limits...}`; nothing is saved when anything is wrong."""
    errors: dict[str, str] = {}
    run = None
    try:
        run = run_of(owner, parse_id(data.get("run")))
    except (Http404, ValueError, TypeError):
        errors["run"] = "no such run"
    if run is not None and (problem := servable_problem(run)):
        errors["run"] = problem
    name = str(data.get("name") or "").strip()
    if name and (message := _name_error(owner, name)):
        errors["name"] = message
    limits = _clean_limits(data, errors)
    if errors:
        return None, errors
    assert run is not None
    with transaction.atomic():
        endpoint = Endpoint.objects.create(owner=owner, run=run, name=name or _free_name(
            owner, f"{run.project.name} {run.name or f'run {run.pk}'}"), **limits)
        EndpointStats.objects.create(endpoint=endpoint)
    warm(endpoint)
    return endpoint, {}


def update_endpoint(endpoint: Endpoint, data: dict) -> dict[str, str]:
    errors: dict[str, str] = {}
    if "name" in data:
        name = str(data["name"] or "").strip()
        if message := _name_error(endpoint.owner, name, endpoint):
            errors["name"] = message
        endpoint.name = name
    limits = _clean_limits(data, errors)
    if "state" in data and data["state"] not in Endpoint.State.values:
        errors["state"] = "running or stopped"
    if errors:
        endpoint.refresh_from_db()
        return errors
    for key, value in limits.items():
        setattr(endpoint, key, value)
    if "state" in data:
        endpoint.state = data["state"]
    endpoint.save()
    if endpoint.state == Endpoint.State.RUNNING:
        warm(endpoint)
    return {}


def set_state(endpoint: Endpoint, state: str) -> Endpoint:
    endpoint.state = state
    endpoint.save(update_fields=["state"])
    if state == Endpoint.State.RUNNING:
        warm(endpoint)
    return endpoint


def delete_endpoint(endpoint: Endpoint) -> None:
    endpoint.delete()


def create_token(endpoint: Endpoint, name: str = "") -> tuple[EndpointToken, str]:
    """A new token for this endpoint alone; the plain token is returned once and never stored."""
    token = selectors.TOKEN_PREFIX + secrets.token_urlsafe(32)
    saved = EndpointToken.objects.create(endpoint=endpoint, name=str(name or "")[:64],
                                         digest=selectors.token_digest(token), prefix=token[:12])
    return saved, token


def revoke_token(token: EndpointToken) -> None:
    token.delete()


# -- calls -------------------------------------------------------------------------------------------
_transports: dict[str, RedisTransport] = {}


def transport() -> RedisTransport | None:
    """The Redis transport of this studio (None without a broker: calls answer 503)."""
    url = config.redis_url()
    if not url:
        return None
    if url not in _transports:
        _transports[url] = RedisTransport(url)
    return _transports[url]


def warm(endpoint: Endpoint) -> None:
    """Ask the serving process to load the model now, so the first call does not wait for it."""
    target = transport()
    if target is None:
        return
    try:
        target.warm({"bundle": str(endpoint.bundle()), "endpoint": endpoint.pk})
    except Exception:  # noqa: BLE001 - warming is a courtesy; a call loads the model anyway
        pass


def _error(status: int, detail: str, errors: dict | None = None) -> tuple[int, bytes]:
    return status, json.dumps({"detail": detail, "errors": errors or {}}).encode()


def call_endpoint(endpoint: Endpoint, raw: bytes) -> tuple[int, bytes, int]:
    """Check a request body and have the serving process answer it: (status, JSON body, instances)."""
    if endpoint.state != Endpoint.State.RUNNING:
        return (*_error(409, "this endpoint is stopped: start it to call it"), 0)
    try:
        manifest = selectors.manifest_of(endpoint)
        instances, _ = check_instances(parse_json(raw), manifest, selectors.limits_of(endpoint))
    except RequestError as exc:
        return (*_error(exc.status, exc.detail, exc.errors), 0)
    except UserError as exc:  # the run's model went missing or cannot be served
        return (*_error(409, str(exc)), 0)
    target = transport()
    if target is None:
        return (*_error(503, "no model server is configured (REDIS_URL is not set)"), 0)
    header = {"bundle": str(endpoint.bundle()), "endpoint": endpoint.pk,
              "limits": selectors.limits_of(endpoint).as_dict()}
    try:
        status, body = target.call(header, raw, conf.TIMEOUT_SECONDS)
    except ServingUnavailable:
        return (*_error(503, "the model server is not running; the studio restarts it, try again in a few "
                             "seconds"), 0)
    except ServingTimeout:
        return (*_error(504, f"the model server did not answer within {conf.TIMEOUT_SECONDS:g} s"), 0)
    return status, body, len(instances)


def too_large(endpoint: Endpoint, size: int) -> tuple[int, bytes]:
    message = (f"the request body is {size} bytes; this endpoint takes at most {endpoint.max_body_bytes} "
               f"(send fewer instances or smaller images)")
    return _error(413, message, {"body": [message]})


def record_call(endpoint: Endpoint, status: int, started: float, instances: int,
                token: EndpointToken | None) -> None:
    """One call for the statistics; never fails the call it describes."""
    target = transport()
    if target is None:
        return
    event = {"endpoint": endpoint.pk, "status": status, "ms": round((time.perf_counter() - started) * 1000, 3),
             "instances": instances, "at": time.time()}
    if isinstance(token, EndpointToken):
        event["token"] = token.pk
    try:
        target.record(event)
    except Exception:  # noqa: BLE001
        pass


# -- the serving process ------------------------------------------------------------------------------
def save_tallies(tallies: dict[int, Tally]) -> None:
    """Add what the serving process counted since its last write (endpoints deleted meanwhile are skipped)."""
    for endpoint_id, tally in tallies.items():
        updates = {"requests": F("requests") + tally.requests, "errors": F("errors") + tally.errors,
                   "instances": F("instances") + tally.instances, "batches": F("batches") + tally.batches,
                   "batched_instances": F("batched_instances") + tally.batched_instances,
                   "largest_batch": Greatest("largest_batch", tally.largest_batch)}
        with transaction.atomic():
            stats = EndpointStats.objects.filter(endpoint_id=endpoint_id).first()
            if stats is None:
                continue
            if tally.latencies:
                updates["latencies"] = (stats.latencies + tally.latencies)[-conf.LATENCY_WINDOW:]
            if tally.runtime:
                updates["runtime"] = tally.runtime
            if tally.last_request:
                updates["last_request_at"] = datetime.fromtimestamp(tally.last_request, UTC)
            EndpointStats.objects.filter(pk=stats.pk).update(**updates)
        for token_id, used in tally.tokens.items():
            EndpointToken.objects.filter(pk=token_id).update(last_used_at=datetime.fromtimestamp(used, UTC))


# -- exports for a serving cluster --------------------------------------------------------------------
def default_model_name(run) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{run.project.name}_{run.name or run.pk}").strip("_")
    return name[:64] or f"run{run.pk}"


def model_repository(run, name: str | None = None):
    """The run's model as a Triton / KServe model repository (a zip), made again when the bundle changed."""
    import shutil
    import tempfile
    from pathlib import Path

    from nnc_web.engine.atomic import replace_atomically
    from nnc_web.engine.serving.export import NAME, export_repository, zip_repository

    name = name or default_model_name(run)
    if not NAME.match(name):
        raise UserError("a model name has 1 to 64 letters, digits, '_', '-' or '.'")
    bundle = run.folder() / "model"
    if problem := servable_problem(run):
        raise UserError(problem)
    target = bundle / f"repository-{name}.zip"
    newest = max((bundle / f).stat().st_mtime for f in ("manifest.json", "weights.safetensors") if (bundle / f).exists())
    if not target.exists() or target.stat().st_mtime < newest:
        work = Path(tempfile.mkdtemp(prefix="nnc-repository-"))
        try:
            export_repository(bundle, work / "repository", name)
            replace_atomically(target, lambda path: zip_repository(work / "repository", path))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target
