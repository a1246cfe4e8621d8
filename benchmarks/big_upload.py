"""A multi-GB archive upload through Daphne (chunked protocol): throughput and the server's peak memory.

    .venv/bin/python benchmarks/big_upload.py [--gb 2]

Writes a zip of incompressible data, streams it to `POST /api/uploads/` of a fresh stack and reads
the Daphne process's peak resident memory (VmHWM). The baseline in the same run is a local file copy
of the same archive (the disk's own speed). Memory must stay far below the archive size.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import LiveClient  # noqa: E402
from tests.stack import start_stack, stop_stack  # noqa: E402


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_archive(path: Path, gigabytes: float) -> None:
    chunk = os.urandom(64 * 1024 * 1024)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for i in range(max(1, int(gigabytes * 16))):
            archive.writestr(f"class_{i % 2}/blob_{i:04d}.bin", chunk)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=2.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nnc-upload-", dir=Path(__file__).resolve().parent.parent / "var"))
    from nnc_web.launcher import free_port

    process, info = start_stack(root, free_port())
    try:
        archive = root / "big.zip"
        make_archive(archive, args.gb)
        size = archive.stat().st_size
        start = time.perf_counter()
        shutil.copyfile(archive, root / "copy.zip")
        copy_rate = size / (time.perf_counter() - start) / 1e6
        (root / "copy.zip").unlink()
        client = LiveClient(info["url"]).sign_up("bigupload")
        daphne = info["pids"]["daphne"]
        before = peak_rss_mb(daphne)
        start = time.perf_counter()
        upload = client.upload(archive)
        elapsed = time.perf_counter() - start
        assert (upload["size"], upload["state"], upload["kind"]) == (size, "ready", "zip")
        print(f"RESULT archive_bytes={size}")
        print(f"RESULT upload_mb_per_s={size / elapsed / 1e6:.1f}")
        print(f"RESULT local_copy_mb_per_s={copy_rate:.1f}")
        print(f"RESULT daphne_peak_rss_mb_before={before:.0f}")
        print(f"RESULT daphne_peak_rss_mb_after={peak_rss_mb(daphne):.0f}")
        print(f"RESULT upload_over_copy_ratio={size / elapsed / 1e6 / copy_rate:.2f}")
    finally:
        stop_stack(process)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
