"""Dataset rules: receive uploads, register what pre-processing built, page rows, export, delete."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from django.conf import settings
from django.db import transaction
from PIL import Image

from nnc_web import storage
from nnc_web.datasets.models import Dataset, Upload
from nnc_web.datasets.zipstream import stream_zip
from nnc_web.engine.archives import ArchiveError, archive_kind
from nnc_web.engine.nnc_csv import build_row_index, read_header, read_rows
from nnc_web.engine.reporting import UserError
from nnc_web.engine.safe_paths import safe_join

UPLOAD_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".csv")
_CHUNK = 1 << 20
THUMB_SIZE = 96


def upload_kind_for(filename: str) -> str:
    lower = filename.lower()
    if not lower.endswith(UPLOAD_SUFFIXES):
        raise UserError("unsupported file type: upload a .zip, .tar, .tar.gz, .tgz or .csv file")
    return "csv" if lower.endswith(".csv") else "archive"


def save_upload(owner, filename: str, stream: BinaryIO) -> Upload:
    """Stream the body to disk in chunks (never whole in memory), then check what it really is."""
    filename = Path(filename.replace("\\", "/")).name[:255]
    expected = upload_kind_for(filename)
    upload = Upload.objects.create(owner=owner, filename=filename, kind=expected)
    folder = upload.folder()
    folder.mkdir(parents=True, exist_ok=True)
    target = upload.absolute_path()
    size = 0
    try:
        with open(target, "wb") as out:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > settings.NNC_MAX_UPLOAD_BYTES:
                    raise UserError(f"the file is larger than {settings.NNC_MAX_UPLOAD_BYTES} bytes")
                out.write(chunk)
        if size == 0:
            raise UserError("the file is empty")
        if expected == "archive":
            try:
                upload.kind = archive_kind(target)
            except ArchiveError as exc:
                raise UserError(f"{filename} is not a valid archive: {exc}") from exc
        else:
            _check_csv_text(target)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        upload.delete()
        raise
    upload.size = size
    upload.save(update_fields=["size", "kind"])
    return upload


def _check_csv_text(path: Path) -> None:
    with open(path, "rb") as handle:
        head = handle.read(65536)
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multibyte character cut at the window edge is fine
            raise UserError("the CSV is not UTF-8 text") from exc


def delete_upload(upload: Upload) -> None:
    shutil.rmtree(upload.folder(), ignore_errors=True)
    upload.delete()


def register_built_datasets(job, built: list) -> list[Dataset]:
    """Move each built folder into the user's datasets and create its row (datasets are immutable)."""
    created = []
    for item in built:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                owner_id=job.owner_id, name=item.name, job=job, plugin_id=job.plugin_id,
                csv_name=item.csv_name, rows=item.rows, columns=[c.as_dict() for c in item.columns],
                class_names=item.class_names)
            folder = dataset.folder()
            folder.parent.mkdir(parents=True, exist_ok=True)
            if folder.exists():  # left by a row that never committed: nothing references it
                shutil.rmtree(folder)
            shutil.move(str(item.folder), str(folder))
            np.save(dataset.index_path(), build_row_index(dataset.csv_path()))
            dataset.size_bytes = storage.folder_size(folder)
            dataset.save(update_fields=["size_bytes"])
        created.append(dataset)
    return created


def delete_dataset(dataset: Dataset) -> None:
    folder = dataset.folder()
    dataset.delete()
    shutil.rmtree(folder, ignore_errors=True)


def _row_index(dataset: Dataset) -> np.ndarray:
    path = dataset.index_path()
    if not path.exists():  # older or hand-made datasets: build once
        np.save(path, build_row_index(dataset.csv_path()))
    return np.load(path, mmap_mode="r")


def dataset_page(dataset: Dataset, start: int, limit: int) -> dict:
    """Rows [start, start+limit) read with one seek; row numbers are stable (datasets are immutable)."""
    offsets = _row_index(dataset)
    header = read_header(dataset.csv_path())
    rows = read_rows(dataset.csv_path(), offsets, start, limit)
    total = len(offsets)
    end = start + len(rows)
    return {"total": total, "start": start, "header": header,
            "rows": [{"index": start + i, "cells": row} for i, row in enumerate(rows)],
            "next": end if end < total else None, "previous": max(0, start - limit) if start > 0 else None}


def dataset_file(dataset: Dataset, relative: str) -> Path:
    """A file of the dataset, as referenced by its CSV; never anything outside its folder."""
    path = safe_join(dataset.folder(), relative)
    hidden = any(part.startswith(".") for part in Path(relative.replace("\\", "/")).parts if part != ".")
    if hidden or not path.is_file():
        raise FileNotFoundError(relative)
    return path


def thumbnail(dataset: Dataset, relative: str) -> Path:
    """A small JPEG of a dataset image, made once and kept in the dataset's hidden cache folder."""
    source = dataset_file(dataset, relative)
    cache = dataset.folder() / ".thumbs" / (source.relative_to(dataset.folder().resolve()).as_posix() + ".jpg")
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(source) as image:
            image.thumbnail((THUMB_SIZE, THUMB_SIZE))
            image.convert("RGB").save(cache, "JPEG", quality=85)
    return cache


def export_zip(dataset: Dataset) -> Iterator[bytes]:
    """The dataset folder (CSV + files, no caches) as a zip stream, written as it is sent."""
    folder = dataset.folder()
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    return stream_zip((f"{dataset.name}/{p.relative_to(folder).as_posix()}", p) for p in files)
