"""A corrupt archive (cut short, damaged) is named as corrupt, not as "not an archive"."""
from __future__ import annotations

import pytest

from nnc_web.engine.archives import ArchiveError, CorruptArchiveError, archive_kind, extract_archive
from tests.sample_data import digit_images, write_class_tar, write_class_zip


@pytest.fixture
def good_zip(tmp_path):
    return write_class_zip(tmp_path / "digits.zip", digit_images(4, 2))


def test_a_zip_cut_short_is_corrupt(good_zip, tmp_path):
    data = good_zip.read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[:len(data) // 2])  # an upload or download that stopped half-way
    with pytest.raises(CorruptArchiveError, match="the zip file is corrupt: it was cut short or damaged"):
        archive_kind(cut)
    with pytest.raises(CorruptArchiveError, match="zip file is corrupt"):
        extract_archive(cut, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_damaged_member_is_corrupt_and_named(good_zip, tmp_path):
    data = bytearray(good_zip.read_bytes())
    data[60] ^= 0xFF  # inside the first member's compressed bytes: its CRC no longer matches
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    assert archive_kind(damaged) == "zip"  # its table of contents is intact
    with pytest.raises(CorruptArchiveError, match=r"the archive is corrupt \(damaged or incomplete\): "):
        extract_archive(damaged, tmp_path / "out")


def test_a_tgz_cut_short_is_corrupt(tmp_path):
    archive = write_class_tar(tmp_path / "digits.tgz", digit_images(6, 2, size=64))
    data = archive.read_bytes()
    (tmp_path / "cut.tgz").write_bytes(data[:len(data) // 2])
    with pytest.raises(CorruptArchiveError, match="corrupt"):
        extract_archive(tmp_path / "cut.tgz", tmp_path / "out")
    (tmp_path / "tiny.tgz").write_bytes(data[:8])  # only the gzip header: nothing readable
    with pytest.raises(CorruptArchiveError, match="the gzip file is corrupt"):
        archive_kind(tmp_path / "tiny.tgz")


def test_text_is_not_an_archive_and_not_called_corrupt(tmp_path):
    (tmp_path / "a.zip").write_bytes(b"hello, I am text")
    with pytest.raises(ArchiveError, match="not a supported archive: its content is neither zip nor tar") as caught:
        archive_kind(tmp_path / "a.zip")
    assert not isinstance(caught.value, CorruptArchiveError)
