"""Project rules: NNC-style alphanumeric names, datasets of the same owner."""
from __future__ import annotations

import re

from django.http import Http404

from nnc_web.datasets.selectors import dataset_of
from nnc_web.projects.models import Project

PROJECT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def create_project(owner, name: str, description: str = "", train_dataset: int | None = None,
                   valid_dataset: int | None = None) -> tuple[Project | None, dict[str, str]]:
    errors: dict[str, str] = {}
    if not PROJECT_NAME.match(name or ""):
        errors["name"] = "use letters, digits, '_' or '-' (at most 64)"
    elif Project.objects.filter(owner=owner, name=name).exists():
        errors["name"] = "you already have a project with this name"
    datasets = {}
    for field, value in (("train_dataset", train_dataset), ("valid_dataset", valid_dataset)):
        if value in (None, ""):
            continue
        try:
            datasets[field] = dataset_of(owner, int(value))
        except (Http404, TypeError, ValueError):
            errors[field] = "no such dataset"
    if errors:
        return None, errors
    return Project.objects.create(owner=owner, name=name, description=description, **datasets), {}
