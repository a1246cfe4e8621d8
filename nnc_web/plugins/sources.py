"""Turn a `source` parameter (archive or server folder) into a folder the engine can read."""
from __future__ import annotations

from pathlib import Path

from nnc_web.engine.archives import ExtractLimits, extract_archive
from nnc_web.engine.reporting import Reporter, UserError, check_stop, log_list


def archive_limits() -> ExtractLimits:
    from django.conf import settings

    return ExtractLimits(max_members=settings.NNC_ARCHIVE_MAX_MEMBERS,
                         max_total_bytes=settings.NNC_ARCHIVE_MAX_BYTES,
                         max_ratio=settings.NNC_ARCHIVE_MAX_RATIO,
                         ratio_slack_bytes=settings.NNC_ARCHIVE_RATIO_SLACK_BYTES)


def prepare_source(ctx: Reporter, source: Path, limits: ExtractLimits | None = None) -> Path:
    if source.is_dir():
        ctx.log(f"reading source folder {source}")
        return source
    if not source.is_file():
        raise UserError("the source file is missing")
    ctx.log(f"extracting {source.name} ({source.stat().st_size / 1e6:.1f} MB)")
    dest = ctx.path("source")
    report = extract_archive(source, dest, limits or archive_limits(),
                             on_member=lambda n: check_stop(ctx) if n % 200 == 0 else None)
    log_list(ctx, "skipped ", report.skipped)
    ctx.log(f"extracted {report.files} files ({report.bytes_written / 1e6:.1f} MB)")
    return dest
