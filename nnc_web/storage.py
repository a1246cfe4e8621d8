"""Where users' files live under NNC_DATA_DIR; every path goes through safe_join."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings

from nnc_web.engine.safe_paths import safe_join


def user_dir(user_id: int) -> Path:
    return safe_join(settings.DATA_DIR, f"users/{int(user_id)}")


def uploads_dir(user_id: int) -> Path:
    return user_dir(user_id) / "uploads"


def datasets_dir(user_id: int) -> Path:
    return user_dir(user_id) / "datasets"


def jobs_dir(user_id: int) -> Path:
    return user_dir(user_id) / "jobs"


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def dataset_outputs_dir(user_id: int, dataset_id: int) -> Path:
    """What post-processing makes from a dataset lives beside it, not inside it (datasets are immutable)."""
    return user_dir(user_id) / "dataset_outputs" / str(int(dataset_id))
