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
from nnc_web.datasets.palette import defect_overlay_rgba, overlay_rgba
from nnc_web.datasets.zipstream import stream_zip
from nnc_web.engine.archives import ArchiveError, CorruptArchiveError, archive_kind
from nnc_web.engine.atomic import replace_atomically
from nnc_web.engine.imaging import cached_thumbnail
from nnc_web.engine.nnc_csv import build_row_index, parse_header_cell, read_header, read_rows
from nnc_web.engine.reporting import UserError
from nnc_web.engine.safe_paths import safe_join
from nnc_web.jobs.services import cancel_job, discard_jobs_in, unfinished_jobs

UPLOAD_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".csv")
_CHUNK = 1 << 20
THUMB_SIZE = 96


def upload_kind_for(filename: str) -> str:
    lower = filename.lower()
    if not lower.endswith(UPLOAD_SUFFIXES):
        raise UserError("unsupported file type: upload a .zip, .tar, .tar.gz, .tgz or .csv file")
    return "csv" if lower.endswith(".csv") else "archive"


def _quota_error(room: int) -> UserError:
    return UserError(f"your storage quota of {settings.NNC_USER_QUOTA_BYTES / 1e6:.0f} MB is full "
                     f"({room / 1e6:.1f} MB left): delete datasets, runs or uploads you no longer need")


def _upload_limit(owner) -> tuple[int, str]:
    """The most bytes one upload may bring now, and the message when it brings more."""
    room = storage.quota_room(owner.pk)
    if room is not None and room < settings.NNC_MAX_UPLOAD_BYTES:
        return room, str(_quota_error(room))
    return settings.NNC_MAX_UPLOAD_BYTES, f"the file is larger than {settings.NNC_MAX_UPLOAD_BYTES} bytes"


def _new_upload(owner, filename: str, state: str, expected_size: int = 0) -> Upload:
    filename = Path(filename.replace("\\", "/")).name[:255]
    upload_kind_for(filename)
    if expected_size > settings.NNC_MAX_UPLOAD_BYTES:
        raise UserError(f"the file is larger than {settings.NNC_MAX_UPLOAD_BYTES} bytes")
    room = storage.quota_room(owner.pk)
    if room is not None and expected_size > room:
        raise _quota_error(room)
    upload = Upload.objects.create(owner=owner, filename=filename, kind="archive", state=state,
                                   expected_size=expected_size)
    upload.folder().mkdir(parents=True, exist_ok=True)
    return upload


def _discard(upload: Upload) -> None:
    shutil.rmtree(upload.folder(), ignore_errors=True)
    upload.delete()


def _verify(upload: Upload) -> None:
    """Check that the received bytes are what the name says; mark the upload ready."""
    target = upload.absolute_path()
    if upload.size == 0:
        raise UserError("the file is empty")
    if upload_kind_for(upload.filename) == "archive":
        try:
            upload.kind = archive_kind(target)
        except CorruptArchiveError as exc:
            raise UserError(f"{upload.filename}: {exc}") from exc
        except ArchiveError as exc:
            raise UserError(f"{upload.filename} is not a valid archive: {exc}") from exc
    else:
        upload.kind = "csv"
        _check_csv_text(target)
    upload.state = Upload.State.READY
    upload.save(update_fields=["kind", "state", "size"])


def _append(upload: Upload, stream: BinaryIO, limit: int, too_much: str) -> int:
    """Append the stream to the upload's file in chunks; never more than `limit` bytes."""
    written = 0
    with open(upload.absolute_path(), "r+b" if upload.absolute_path().exists() else "wb") as out:
        out.seek(upload.size)
        out.truncate()  # drop the tail of an earlier, interrupted chunk
        while chunk := stream.read(_CHUNK):
            written += len(chunk)
            if written > limit:
                raise UserError(too_much)
            out.write(chunk)
    return written


def save_upload(owner, filename: str, stream: BinaryIO) -> Upload:
    """One-request upload: stream the body to disk, then check what it really is.

    Daphne holds a request body in memory while handing it over, so large files use the chunked
    protocol below instead (the SPA always does).
    """
    upload = _new_upload(owner, filename, Upload.State.UPLOADING)
    try:
        upload.size = _append(upload, stream, *_upload_limit(owner))
        _verify(upload)
    except BaseException:
        _discard(upload)
        raise
    return upload


def clean_abandoned_uploads(max_age_hours: float) -> int:
    """Remove chunked uploads that stopped arriving (no chunk for `max_age_hours`); returns how many."""
    import time

    limit = time.time() - max_age_hours * 3600
    removed = 0
    for upload in Upload.objects.filter(state=Upload.State.UPLOADING):
        path = upload.absolute_path()
        last = path.stat().st_mtime if path.exists() else upload.created_at.timestamp()
        if last < limit:
            _discard(upload)
            removed += 1
    return removed


def start_chunked_upload(owner, filename: str, size: int) -> Upload:
    if size <= 0:
        raise UserError("the file is empty")
    return _new_upload(owner, filename, Upload.State.UPLOADING, expected_size=size)


def append_chunk(upload: Upload, offset: int, stream: BinaryIO) -> Upload:
    """Add the chunk that starts at `offset`; a resent or out-of-order chunk is refused with the
    offset the server has, so a client that lost its connection resumes from there."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload.pk)
        if upload.state != Upload.State.UPLOADING:
            raise UploadConflict("this upload is already complete", upload.size)
        if offset != upload.size:
            raise UploadConflict(f"expected the chunk at offset {upload.size}", upload.size)
        limit = min(settings.NNC_UPLOAD_CHUNK_BYTES, upload.expected_size - upload.size)
        upload.size += _append(upload, stream, limit,
                               f"a chunk may hold at most {limit} bytes here (chunk size or file size)")
        upload.save(update_fields=["size"])
    return upload


def finish_upload(upload: Upload) -> Upload:
    if upload.state == Upload.State.READY:
        return upload
    if upload.size != upload.expected_size:
        raise UploadConflict(f"only {upload.size} of {upload.expected_size} bytes arrived", upload.size)
    try:
        _verify(upload)
    except UserError:
        _discard(upload)
        raise
    return upload


class UploadConflict(UserError):
    """The client's idea of the upload differs from the server's; `received` says where it stands."""

    def __init__(self, message: str, received: int) -> None:
        super().__init__(message)
        self.received = received


def _check_csv_text(path: Path) -> None:
    with open(path, "rb") as handle:
        head = handle.read(65536)
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multibyte character cut at the window edge is fine
            raise UserError("the CSV is not UTF-8 text") from exc


def delete_upload(upload: Upload) -> None:
    _discard(upload)


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
            dataset.class_counts = class_counts(dataset)
            dataset.save(update_fields=["size_bytes", "class_counts"])
        created.append(dataset)
    return created


def _csv_index(dataset: Dataset, header: list[str], kind: str) -> int | None:
    """The position in `header` of the dataset's first column of `kind` (a variable may span many cells)."""
    name = next((c["name"] for c in dataset.columns if c.get("kind") == kind), None)
    names = [parse_header_cell(cell).name for cell in header]
    return names.index(name) if name in names else None


def _read_boxes(dataset: Dataset, cell: str) -> list[dict]:
    """The boxes file a detection row references: `class cx cy w h` lines, normalised."""
    boxes = []
    for line in dataset_file(dataset, cell).read_text().splitlines():
        cls, cx, cy, w, h = line.split()
        boxes.append({"cls": int(cls), "cx": float(cx), "cy": float(cy), "w": float(w), "h": float(h)})
    return boxes


def class_counts(dataset: Dataset) -> list[int]:
    """Rows per class (classification, anomaly), boxes per class (detection) or pixels per class
    (segmentation), for the viewer's histogram."""
    names = dataset.class_names
    if not names:
        return []
    counts = [0] * len(names)
    offsets = _row_index(dataset)
    header = read_header(dataset.csv_path())
    boxes_column = _csv_index(dataset, header, "boxes")
    label_column = _csv_index(dataset, header, "label")
    mask_column = _csv_index(dataset, header, "mask")
    for start in range(0, len(offsets), 10_000):
        for row in read_rows(dataset.csv_path(), offsets, start, 10_000):
            if mask_column is not None and label_column is None:  # segmentation: pixels per class
                with Image.open(dataset_file(dataset, row[mask_column])) as mask:
                    histogram = mask.histogram()
                counts = [c + histogram[i] for i, c in enumerate(counts)]
            elif boxes_column is not None:
                for box in _read_boxes(dataset, row[boxes_column]):
                    counts[box["cls"]] += 1
            elif label_column is not None and row[label_column].isdigit() and int(row[label_column]) < len(names):
                counts[int(row[label_column])] += 1
    return counts


def delete_dataset(dataset: Dataset) -> None:
    """The row, the dataset's folder and what post-processing made from it. Jobs still working on it
    are cancelled first (those writing its outputs also remove what they write once they stop)."""
    outputs = storage.dataset_outputs_dir(dataset.owner_id, dataset.pk)
    discard_jobs_in(dataset.owner_id, outputs)
    for job in unfinished_jobs(dataset.owner_id).filter(context__dataset=dataset.pk):
        cancel_job(job)
    folders = [dataset.folder(), outputs]
    dataset.delete()
    for folder in folders:
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
    boxes_column = _csv_index(dataset, header, "boxes")
    page_rows = []
    for i, row in enumerate(rows):
        entry: dict = {"index": start + i, "cells": row}
        if boxes_column is not None:
            entry["boxes"] = _read_boxes(dataset, row[boxes_column])
        page_rows.append(entry)
    return {"total": total, "start": start, "header": header, "rows": page_rows,
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
    return cached_thumbnail(source, cache, THUMB_SIZE, settings.NNC_MAX_IMAGE_PIXELS)


def _has_kind(dataset: Dataset, kind: str) -> bool:
    return any(c.get("kind") == kind for c in dataset.columns)


def counted_unit(dataset: Dataset) -> str:
    """What `class_counts` counts, for the histogram's heading: pixels (segmentation), boxes
    (detection), images or rows (one label per row)."""
    if _has_kind(dataset, "mask") and not _has_kind(dataset, "label"):
        return "pixels"
    if _has_kind(dataset, "boxes"):
        return "boxes"
    return "images" if _has_kind(dataset, "image") else "rows"


def is_anomaly_dataset(dataset: Dataset) -> bool:
    """A labelled dataset with masks (the anomaly plugin's test set): its masks mark defects."""
    return _has_kind(dataset, "label") and _has_kind(dataset, "mask")


def mask_overlay(dataset: Dataset, relative: str) -> Path:
    """A mask in colour, made once like thumbnails: a segmentation mask coloured by class
    (transparent where ignored); an anomaly mask (a labelled dataset's 0/1 mask) red on its defect
    pixels only, the rest transparent."""
    source = dataset_file(dataset, relative)
    defects = is_anomaly_dataset(dataset)
    suffix = ".defects.png" if defects else ".overlay.png"
    cache = dataset.folder() / ".thumbs" / (source.relative_to(dataset.folder().resolve()).as_posix() + suffix)
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(source) as mask:
            values = np.asarray(mask.convert("L"))
        replace_atomically(cache, lambda path: Image.fromarray(
            (defect_overlay_rgba if defects else overlay_rgba)(values), "RGBA").save(path, format="PNG"))
    return cache


def export_zip(dataset: Dataset) -> Iterator[bytes]:
    """The dataset folder (CSV + files, no caches) as a zip stream, written as it is sent."""
    folder = dataset.folder()
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    return stream_zip((f"{dataset.name}/{p.relative_to(folder).as_posix()}", p) for p in files)
