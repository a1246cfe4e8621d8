"""Write a zip archive into a byte stream as it is produced (no temp file, bounded memory)."""
from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

_COMPRESSED = {".png", ".jpg", ".jpeg", ".gif", ".zip", ".gz", ".npy"}


class _Sink:
    """A write-only, unseekable file: zipfile then writes data descriptors."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks = []
        return data


def stream_zip(members: Iterable[tuple[str, Path]], chunk: int = 1 << 20) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", allowZip64=True) as archive:
        for name, path in members:
            method = zipfile.ZIP_STORED if path.suffix.lower() in _COMPRESSED else zipfile.ZIP_DEFLATED
            info = zipfile.ZipInfo.from_file(path, name)
            info.compress_type = method
            with open(path, "rb") as source, archive.open(info, "w", force_zip64=True) as target:
                while data := source.read(chunk):
                    target.write(data)
                    if sink.position and sum(map(len, sink.chunks)) >= chunk:
                        yield sink.drain()
            yield sink.drain()
    yield sink.drain()
