"""Safe, member-by-member extraction of .zip/.tar/.tar.gz/.tgz archives.

Rejects absolute paths and `..` (zip-slip), skips links and devices, and caps the number of members,
the bytes actually written and the compression ratio, so a zip bomb stops early with a clear message.
"""
from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from nnc_web.engine.reporting import UserError
from nnc_web.engine.safe_paths import UnsafePathError, clean_relative

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
_CHUNK = 1 << 20


class ArchiveError(UserError):
    """The archive is malformed, malicious or over a limit."""


class CorruptArchiveError(ArchiveError):
    """The file starts as an archive does but cannot be read through: cut short or damaged."""


# How zip and gzip files begin: a file that does but fails to open is a corrupt archive, not another
# kind of file (an upload cut short is the usual cause).
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class ExtractLimits:
    max_members: int = 1_000_000
    max_total_bytes: int = 200 * 1024**3
    max_ratio: float = 200.0  # bytes written / archive size; real image archives sit near 1
    ratio_slack_bytes: int = 64 * 1024**2  # tiny archives of text may compress far better


@dataclass
class ExtractReport:
    files: int = 0
    bytes_written: int = 0
    skipped: list[str] = field(default_factory=list)


def archive_kind(path: Path) -> str:
    """Return 'zip' or 'tar' judged from the content (not the name); raise CorruptArchiveError for a
    zip or gzip file that cannot be read, ArchiveError for anything else."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except (OSError, EOFError):
        pass
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(_ZIP_MAGIC):
        raise CorruptArchiveError("the zip file is corrupt: it was cut short or damaged (its table of contents "
                                  "is missing); upload it again")
    if head.startswith(_GZIP_MAGIC):
        raise CorruptArchiveError("the gzip file is corrupt (cut short or damaged) or holds no tar archive; "
                                  "upload it again")
    raise ArchiveError("not a supported archive: its content is neither zip nor tar data (upload a .zip, .tar, "
                       ".tar.gz or .tgz file)")


@dataclass
class _Member:
    name: str
    kind: str  # file | dir | link | other
    size: int
    open: Callable[[], BinaryIO]


def _zip_members(archive: zipfile.ZipFile) -> Iterator[_Member]:
    for info in archive.infolist():
        file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the writer set no type bits
        if info.is_dir():
            kind = "dir"
        elif file_type == stat.S_IFLNK:
            kind = "link"
        elif file_type not in (0, stat.S_IFREG):
            kind = "other"
        else:
            kind = "file"
        yield _Member(info.filename, kind, info.file_size, lambda info=info: archive.open(info))


def _tar_members(archive: tarfile.TarFile) -> Iterator[_Member]:
    for info in archive:  # streams: never loads the whole member list up front
        if info.isdir():
            kind = "dir"
        elif info.issym() or info.islnk():
            kind = "link"
        elif info.isfile():
            kind = "file"
        else:
            kind = "other"

        def opener(info: tarfile.TarInfo = info) -> BinaryIO:
            handle = archive.extractfile(info)
            if handle is None:
                raise ArchiveError(f"cannot read member {info.name!r}")
            return handle

        yield _Member(info.name, kind, info.size, opener)


def extract_archive(
    archive_path: Path,
    dest: Path,
    limits: ExtractLimits = ExtractLimits(),
    on_member: Callable[[int], None] | None = None,
) -> ExtractReport:
    """Extract into `dest` (created). On any rejection `dest` is removed and ArchiveError raised."""
    archive_path = Path(archive_path)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    archive_size = max(archive_path.stat().st_size, 1)
    budget = min(limits.max_total_bytes, int(archive_size * limits.max_ratio) + limits.ratio_slack_bytes)
    report = ExtractReport()
    try:
        if archive_kind(archive_path) == "zip":
            with zipfile.ZipFile(archive_path) as zf:
                _extract_members(_zip_members(zf), dest, limits, budget, report, on_member)
        else:
            with tarfile.open(archive_path, mode="r:*") as tf:
                _extract_members(_tar_members(tf), dest, limits, budget, report, on_member)
    except ArchiveError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        # OSError's text names the server path it failed on: say only what went wrong.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)[:200]
        raise CorruptArchiveError(f"the archive is corrupt (damaged or incomplete): {reason}") from exc
    return report


MAX_COMPONENT = 120  # characters per folder or file name kept (file systems allow 255 bytes)


def shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def readable_name(name: str) -> str:
    """A member name we can write and show: bytes that are not UTF-8 (tar names of another encoding)
    and control characters (a newline in a folder name) become `_`, over-long parts are cut with a
    hash so they stay distinct."""
    import hashlib
    import re

    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = re.sub(r"[\x00-\x1f\x7f\ufffd]", "_", text)
    parts = []
    for part in text.replace("\\", "/").split("/"):
        if len(part) > MAX_COMPONENT:
            stem, dot, suffix = part.rpartition(".") if len(part.rpartition(".")[2]) <= 10 else (part, "", "")
            digest = hashlib.sha1(part.encode()).hexdigest()[:8]
            part = f"{stem[:MAX_COMPONENT - 20]}~{digest}{dot}{suffix}"
        parts.append(part)
    return "/".join(parts)


def _extract_members(
    members: Iterator[_Member],
    dest: Path,
    limits: ExtractLimits,
    budget: int,
    report: ExtractReport,
    on_member: Callable[[int], None] | None,
) -> None:
    root = dest.resolve()
    count = 0
    for member in members:
        count += 1
        if count > limits.max_members:
            raise ArchiveError(f"the archive has more than {limits.max_members} members")
        try:
            relative = clean_relative(readable_name(member.name))
        except UnsafePathError as exc:
            raise ArchiveError(f"rejected archive: {shorten(str(exc))}") from exc
        if member.kind == "link":
            report.skipped.append(f"{shorten(readable_name(member.name))}: links are not extracted")
            continue
        if member.kind == "other":
            report.skipped.append(f"{shorten(readable_name(member.name))}: not a regular file")
            continue
        target = root.joinpath(*relative.parts)
        if member.kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.parent.resolve() != target.parent or not target.parent.is_relative_to(root):
            raise ArchiveError(f"rejected archive: {shorten(readable_name(member.name))!r} would be written "
                               "outside the folder")
        written = _copy_capped(member, target, budget - report.bytes_written)
        report.bytes_written += written
        report.files += 1
        if on_member is not None:
            on_member(report.files)


def _copy_capped(member: _Member, target: Path, remaining: int) -> int:
    written = 0
    with member.open() as source, open(target, "wb") as out:
        while True:
            chunk = source.read(_CHUNK)
            if not chunk:
                return written
            written += len(chunk)
            if written > remaining:
                raise ArchiveError(
                    "rejected archive: it expands to far more data than its size allows "
                    "(possible zip bomb); nothing was kept"
                )
            out.write(chunk)
