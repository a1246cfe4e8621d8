"""Reads of endpoints and their tokens, always scoped to the requesting user (another user's answer
404), and what a page shows about an endpoint (its model, limits, statistics)."""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from django.db.models import QuerySet

from nnc_web.engine.serving.instances import Limits
from nnc_web.engine.serving.predictor import read_manifest, spec_for, task_of
from nnc_web.selectors import get_or_404
from nnc_web.serving.models import Endpoint, EndpointStats, EndpointToken
from nnc_web.serving.stats import percentiles

TOKEN_PREFIX = "nep_"  # endpoint tokens say what they are (and never look like an account token)


def endpoints_of(user) -> QuerySet[Endpoint]:
    return Endpoint.objects.filter(owner=user).select_related("run", "run__project", "stats")


def endpoint_of(user, endpoint_id: int) -> Endpoint:
    return get_or_404(endpoints_of(user), endpoint_id)


def endpoint_for_call(user, endpoint_id: int, auth) -> Endpoint:
    """The endpoint a predict call may reach: the user's, and with an endpoint token only its own."""
    endpoint = endpoint_of(user, endpoint_id)
    if isinstance(auth, EndpointToken) and auth.endpoint_id != endpoint.pk:
        from django.http import Http404

        raise Http404
    return endpoint


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def endpoint_token(token: str) -> EndpointToken | None:
    return (EndpointToken.objects.select_related("endpoint", "endpoint__owner")
            .filter(digest=token_digest(token)).first())


def limits_of(endpoint: Endpoint) -> Limits:
    return Limits(max_instances=endpoint.max_instances, max_image_bytes=endpoint.max_body_bytes,
                  max_image_pixels=endpoint.max_image_pixels)


_manifests: dict[Path, tuple[int, dict]] = {}
_manifests_lock = threading.Lock()


def manifest_of(endpoint: Endpoint) -> dict:
    """The served bundle's manifest (small JSON; read again when it changes). Never the weights."""
    path = endpoint.bundle() / "manifest.json"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = -1
    with _manifests_lock:
        held = _manifests.get(path)
        if held is not None and held[0] == stamp:
            return held[1]
    manifest = read_manifest(endpoint.bundle())
    with _manifests_lock:
        _manifests[path] = (stamp, manifest)
        if len(_manifests) > 256:
            _manifests.pop(next(iter(_manifests)))
    return manifest


def model_of(endpoint: Endpoint) -> dict:
    """What the endpoint takes and answers, for its page and its test form."""
    try:
        manifest = manifest_of(endpoint)
        spec = spec_for(manifest)
    except Exception as exc:  # noqa: BLE001 - a page still opens when the model went missing
        return {"available": False, "problem": str(exc)}
    model = {"available": True, "architecture": spec.architecture, "inputs": spec.inputs, "task": task_of(manifest),
             "classes": list(manifest.get("class_names") or []), "input_size": manifest.get("input_size")}
    if spec.inputs == "table":
        from nnc_web.engine.serving.table_rows import columns

        model["columns"] = columns(manifest)
    if spec.task == "anomaly":
        model["threshold"] = manifest.get("threshold")
    return model


def stats_of(endpoint: Endpoint) -> dict:
    try:
        stats = endpoint.stats
    except EndpointStats.DoesNotExist:
        stats = EndpointStats(endpoint=endpoint)
    return {"requests": stats.requests, "errors": stats.errors, "instances": stats.instances,
            "batches": stats.batches, "batched_instances": stats.batched_instances,
            "largest_batch": stats.largest_batch, "latency_ms": percentiles(stats.latencies),
            "runtime": stats.runtime, "last_request_at": stats.last_request_at}
