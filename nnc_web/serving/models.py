"""Endpoints: a run's model served over REST, the tokens made for one endpoint alone, and its request
statistics (written by the serving process, which sees every call and every batch)."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from nnc_web.serving import conf


class Endpoint(models.Model):
    class State(models.TextChoices):
        RUNNING = "running"
        STOPPED = "stopped"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="endpoints")
    run = models.ForeignKey("projects.Run", on_delete=models.CASCADE, related_name="endpoints")
    name = models.CharField(max_length=64)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    # Per-endpoint limits: instances per request, request body, pixels of one image, calls per token.
    max_instances = models.PositiveIntegerField(default=conf.DEFAULT_MAX_INSTANCES)
    max_body_bytes = models.BigIntegerField(default=conf.DEFAULT_MAX_BODY_BYTES)
    max_image_pixels = models.BigIntegerField(default=conf.DEFAULT_MAX_IMAGE_PIXELS)
    rate_per_minute = models.PositiveIntegerField(default=conf.DEFAULT_RATE_PER_MINUTE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_endpoint_name_per_owner")]

    def __str__(self) -> str:
        return self.name

    def bundle(self):
        return self.run.folder() / "model"


class EndpointToken(models.Model):
    """A token that calls one endpoint and nothing else (a device's credential); only its SHA-256 is
    kept, so the token itself is shown once, when it is made. Deleting it revokes it."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=64, blank=True)
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)  # the first characters, so a list can tell tokens apart
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.endpoint})"


class EndpointStats(models.Model):
    endpoint = models.OneToOneField(Endpoint, on_delete=models.CASCADE, related_name="stats")
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)  # answers with a 4xx or 5xx status
    instances = models.BigIntegerField(default=0)  # instances answered
    batches = models.BigIntegerField(default=0)  # forward passes that held this endpoint's instances
    batched_instances = models.BigIntegerField(default=0)
    largest_batch = models.PositiveIntegerField(default=0)  # the largest forward pass, in instances
    latencies = models.JSONField(default=list, blank=True)  # the last LATENCY_WINDOW request times, ms
    runtime = models.JSONField(default=dict, blank=True)  # where the model runs (and the measurement)
    last_request_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"stats of {self.endpoint}"
