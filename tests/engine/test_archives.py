"""Archive safety: zip-slip, absolute paths, links, devices, bombs, member caps; nothing escapes."""
from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import pytest

from nnc_web.engine.archives import ArchiveError, ExtractLimits, archive_kind, extract_archive


def make_zip(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_plain_zip_and_tar_variants_extract(tmp_path):
    members = {"cats/a.png": b"1", "dogs/b.png": b"22"}
    make_zip(tmp_path / "a.zip", members)
    report = extract_archive(tmp_path / "a.zip", tmp_path / "out-zip")
    assert report.files == 2 and (tmp_path / "out-zip/dogs/b.png").read_bytes() == b"22"
    for mode, name in (("w", "a.tar"), ("w:gz", "a.tgz"), ("w:gz", "a.tar.gz")):
        with tarfile.open(tmp_path / name, mode) as archive:
            for member, data in members.items():
                info = tarfile.TarInfo(member)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        extract_archive(tmp_path / name, tmp_path / f"out-{name}")
        assert (tmp_path / f"out-{name}/cats/a.png").read_bytes() == b"1"


@pytest.mark.parametrize("evil", ["../evil.png", "a/../../evil.png", "/tmp/evil.png", "C:/evil.png",
                                  "..\\evil.png"])
def test_zip_slip_is_rejected_and_nothing_is_written(tmp_path, evil):
    make_zip(tmp_path / "a.zip", {"ok/a.png": b"1", evil: b"x"})
    dest = tmp_path / "sandbox" / "out"
    with pytest.raises(ArchiveError, match="rejected archive"):
        extract_archive(tmp_path / "a.zip", dest)
    assert not dest.exists()
    assert not (tmp_path / "sandbox" / "evil.png").exists() and not (tmp_path / "evil.png").exists()


def test_tar_traversal_is_rejected(tmp_path):
    with tarfile.open(tmp_path / "a.tar", "w") as archive:
        info = tarfile.TarInfo("../../evil.png")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ArchiveError):
        extract_archive(tmp_path / "a.tar", tmp_path / "out")
    assert not (tmp_path / "evil.png").exists()


def test_links_and_devices_are_skipped_not_followed(tmp_path):
    with tarfile.open(tmp_path / "a.tar", "w") as archive:
        link = tarfile.TarInfo("cls/passwd.png")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
        hard = tarfile.TarInfo("cls/hard.png")
        hard.type = tarfile.LNKTYPE
        hard.linkname = "cls/passwd.png"
        archive.addfile(hard)
        device = tarfile.TarInfo("cls/dev")
        device.type = tarfile.CHRTYPE
        archive.addfile(device)
        ok = tarfile.TarInfo("cls/ok.png")
        ok.size = 2
        archive.addfile(ok, io.BytesIO(b"ok"))
    report = extract_archive(tmp_path / "a.tar", tmp_path / "out")
    assert report.files == 1
    assert sorted(p.name for p in (tmp_path / "out/cls").iterdir()) == ["ok.png"]
    assert any("links are not extracted" in s for s in report.skipped)
    assert any("not a regular file" in s for s in report.skipped)


def test_zip_symlink_member_is_skipped(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as archive:
        info = zipfile.ZipInfo("cls/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
        archive.writestr("cls/ok.png", b"ok")
    report = extract_archive(tmp_path / "a.zip", tmp_path / "out")
    assert report.files == 1 and not (tmp_path / "out/cls/link.png").exists()


def test_zip_bomb_stops_on_bytes_actually_written(tmp_path):
    make_zip(tmp_path / "bomb.zip", {"cls/zeros.png": b"\0" * (20 * 1024 * 1024)}, zipfile.ZIP_DEFLATED)
    assert (tmp_path / "bomb.zip").stat().st_size < 100_000
    limits = ExtractLimits(max_ratio=50, ratio_slack_bytes=1024 * 1024)
    with pytest.raises(ArchiveError, match="zip bomb"):
        extract_archive(tmp_path / "bomb.zip", tmp_path / "out", limits)
    assert not (tmp_path / "out").exists()


def test_total_bytes_and_member_count_are_capped(tmp_path):
    make_zip(tmp_path / "a.zip", {f"cls/{i}.png": b"x" * 1000 for i in range(20)})
    with pytest.raises(ArchiveError, match="more than 10 members"):
        extract_archive(tmp_path / "a.zip", tmp_path / "out1", ExtractLimits(max_members=10))
    with pytest.raises(ArchiveError, match="zip bomb"):
        extract_archive(tmp_path / "a.zip", tmp_path / "out2", ExtractLimits(max_total_bytes=5000))


def test_non_archives_and_damaged_archives_get_clear_messages(tmp_path):
    (tmp_path / "a.zip").write_bytes(b"hello, I am text")
    with pytest.raises(ArchiveError, match="not a supported archive"):
        archive_kind(tmp_path / "a.zip")
    make_zip(tmp_path / "b.zip", {"cls/a.png": b"x" * 5000})
    data = (tmp_path / "b.zip").read_bytes()
    (tmp_path / "c.zip").write_bytes(data[:200] + data[-200:])
    with pytest.raises(ArchiveError):
        extract_archive(tmp_path / "c.zip", tmp_path / "out")
