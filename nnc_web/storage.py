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


def usage(user_id: int) -> dict:
    """What the user's files take and the quota (0: none), for the account page and upload checks."""
    used = folder_size(user_dir(user_id)) if user_dir(user_id).exists() else 0
    return {"used_bytes": used, "quota_bytes": settings.NNC_USER_QUOTA_BYTES}


def quota_room(user_id: int) -> int | None:
    """Bytes the user may still add, or None without a quota."""
    if not settings.NNC_USER_QUOTA_BYTES:
        return None
    return max(0, settings.NNC_USER_QUOTA_BYTES - usage(user_id)["used_bytes"])


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def dataset_outputs_dir(user_id: int, dataset_id: int) -> Path:
    """What post-processing makes from a dataset lives beside it, not inside it (datasets are immutable)."""
    return user_dir(user_id) / "dataset_outputs" / str(int(dataset_id))


def prune_thumbnail_caches() -> int:
    """Every user's thumbnail cache loses the entries whose source was deleted; returns how many."""
    from nnc_web.engine.imaging import prune_thumbnails

    users = Path(settings.DATA_DIR) / "users"
    return sum(prune_thumbnails(folder) for folder in users.iterdir() if folder.is_dir()) if users.is_dir() else 0
