"""Answer requests that arrived together: instances of every request for the same bundle are decoded
in parallel, run through the model in one forward pass (in chunks of the predictor's batch size) and
the outputs handed back to their requests. A bad instance fails its own request only; a model that
cannot load fails the requests for that model only."""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from nnc_web.engine.errors import UserError
from nnc_web.engine.serving.cache import ModelCache
from nnc_web.engine.serving.instances import Limits, RequestError, parse_parameters

log = logging.getLogger("nnc_web.serving")


@dataclass
class Call:
    """One HTTP request as the serving process receives it (already checked by the web process)."""

    id: str
    bundle: str
    instances: list[dict]
    parameters: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)
    endpoint: int | None = None
    deadline: float | None = None  # time.time() after which nobody waits for the answer

    @classmethod
    def from_message(cls, message: dict) -> Call:
        return cls(**{k: message[k] for k in ("id", "bundle", "instances", "parameters", "limits", "endpoint",
                                               "deadline") if k in message})


@dataclass
class Answer:
    id: str
    status: int
    body: Any
    endpoint: int | None = None


@dataclass
class Forward:
    """One model call: which bundle, how many instances, for which endpoints."""

    bundle: str
    size: int
    endpoints: dict[int | None, int]  # endpoint -> its instances in this forward pass
    runtime: str
    runtime_report: dict
    seconds: float


def _failure(call: Call, status: int, detail: str, errors: dict | None = None) -> Answer:
    return Answer(call.id, status, {"detail": detail, "errors": errors or {}}, call.endpoint)


def answer_calls(calls: list[Call], cache: ModelCache, pool: Executor | None = None) -> tuple[list[Answer], list[Forward]]:
    """Answers in the order of `calls`, and the forward passes made."""
    answers: dict[str, Answer] = {}
    forwards: list[Forward] = []
    now = time.time()
    groups: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        if call.deadline is not None and call.deadline < now:
            continue  # the web process has already answered 504
        groups[call.bundle].append(call)
    for bundle, group in groups.items():
        _answer_group(bundle, group, cache, pool, answers, forwards)
    return [answers[c.id] for c in calls if c.id in answers], forwards


def _answer_group(bundle: str, group: list[Call], cache: ModelCache, pool: Executor | None,
                  answers: dict[str, Answer], forwards: list[Forward]) -> None:
    try:
        predictor = cache.get(bundle)
    except UserError as exc:
        for call in group:
            answers[call.id] = _failure(call, 409, f"the model cannot be loaded: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - one broken bundle must not stop the server
        log.exception("loading %s failed", bundle)
        for call in group:
            answers[call.id] = _failure(call, 500, f"the model cannot be loaded ({type(exc).__name__})")
        return
    jobs = []  # (call, parameters, its instances' prepared values or exceptions)
    work = []  # every instance of every call: decoded in parallel across requests, not request by request
    for call in group:
        try:
            parameters = parse_parameters(call.parameters or None)
            limits = Limits(**call.limits) if call.limits else Limits()
        except (RequestError, TypeError) as exc:
            answers[call.id] = _failure(call, 400, str(exc))
            continue
        jobs.append((call, parameters, []))
        work.extend((len(jobs) - 1, index, instance, parameters, limits) for index, instance in enumerate(call.instances))

    def prepare(item: tuple) -> Any:
        _, index, instance, parameters, limits = item
        return predictor.prepare(instance, f"instances[{index}]", parameters, limits)

    for item, prepared in zip(work, pool.map(_guarded(prepare), work) if pool else map(_guarded(prepare), work),
                              strict=True):
        jobs[item[0]][2].append(prepared)
    ready = []
    for call, parameters, prepared in jobs:
        failed = next((p for p in prepared if isinstance(p, BaseException)), None)
        if isinstance(failed, RequestError):
            answers[call.id] = Answer(call.id, failed.status, failed.as_body(), call.endpoint)
        elif failed is not None:
            log.error("preparing an instance failed", exc_info=failed)
            answers[call.id] = _failure(call, 400, f"an instance could not be read ({type(failed).__name__})")
        else:
            ready.append((call, parameters, prepared))
    if not ready:
        return
    flat = [p for _, _, prepared in ready for p in prepared]
    started = time.perf_counter()
    try:
        outputs = predictor.forward(flat)
    except Exception as exc:  # noqa: BLE001
        log.exception("the forward pass of %s failed", bundle)
        for call, _, _ in ready:
            answers[call.id] = _failure(call, 500, f"the model failed on this batch ({type(exc).__name__})")
        return
    seconds = time.perf_counter() - started
    per_endpoint: dict[int | None, int] = defaultdict(int)
    at = 0
    for call, parameters, prepared in ready:
        mine = outputs[at:at + len(prepared)]
        at += len(prepared)
        per_endpoint[call.endpoint] += len(prepared)
        try:
            body = {"predictions": [predictor.answer(o, p, parameters) for o, p in zip(mine, prepared, strict=True)]}
            answers[call.id] = Answer(call.id, 200, body, call.endpoint)
        except Exception as exc:  # noqa: BLE001
            log.exception("answering failed")
            answers[call.id] = _failure(call, 500, f"the answer could not be made ({type(exc).__name__})")
    forwards.append(Forward(bundle, len(flat), dict(per_endpoint), predictor.runtime,
                            dict(predictor.runtime_report), seconds))


def _guarded(function):
    def run(item):
        try:
            return function(item)
        except Exception as exc:  # noqa: BLE001 - returned, so the caller decides per request
            return exc

    return run
