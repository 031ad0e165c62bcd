"""The lake's files: gzip JSON lines, one gzip member per batch, by UTC date and hour.

A file is ``<lake>/date=YYYY-MM-DD/hour=HH/e<epoch>-<first seq>.jsonl.gz``: the messages
of one stream epoch whose *stream* time (when JetStream stored them, UTC) falls in that hour,
in seq order. A batch appends one gzip member to each partition it touches, so ``zcat``
and any gzip reader read a file whole, and a reader can also seek straight to one member.

One line per message, keys in this order::

    {"epoch":1,"seq":42,"subject":"outpost.events.<board>","time_ms":1764136800000,
     "raw":<the message>}        (on one line)

``raw`` is the message byte for byte when it is JSON on one line (every event the BFF
publishes); anything else (not UTF-8, not JSON, a line break inside) is kept as
``"b64":"<base64>"`` instead. The raw bytes are recovered exactly: everything between the
first ``,"raw":`` (it cannot occur earlier: the header's strings escape every quote) and
the final ``}``.

Writes are ``truncate to the committed length, append, fsync``: whatever an uncommitted
batch left past the committed length is cut off first (see ``component.py``).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from backend.lake.errors import LakeFileError

SUFFIX = ".jsonl.gz"
_RAW = b',"raw":'


@dataclass(frozen=True)
class Line:
    """One archived message."""

    epoch: int
    seq: int
    subject: str
    time_ms: int
    data: bytes

    @property
    def board(self) -> str:
        return self.subject.rpartition(".")[2]


class _Header(msgspec.Struct):
    epoch: int
    seq: int
    subject: str
    time_ms: int
    b64: str | None = None


def partition(time_ms: int) -> tuple[str, int]:
    """The UTC (date, hour) of a stream time in milliseconds."""
    moment = datetime.fromtimestamp(time_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d"), moment.hour


def file_path(date: str, hour: int, epoch: int, first_seq: int) -> str:
    """A lake file's path, relative to the lake folder (POSIX separators)."""
    return f"date={date}/hour={hour:02d}/e{epoch:04d}-{first_seq:012d}{SUFFIX}"


def partition_date(path: str) -> str:
    """The ``YYYY-MM-DD`` of a relative lake file path."""
    head = path.split("/", 1)[0]
    if not head.startswith("date="):
        raise LakeFileError(f"{path}: not under a date= folder")
    return head.removeprefix("date=")


def encode_line(epoch: int, seq: int, subject: str, time_ms: int, data: bytes) -> bytes:
    header = msgspec.json.encode(
        {"epoch": epoch, "seq": seq, "subject": subject, "time_ms": time_ms}
    )
    if _embeddable(data):
        return header[:-1] + _RAW + data + b"}\n"
    return header[:-1] + b',"b64":"' + base64.b64encode(data) + b'"}\n'


def _embeddable(data: bytes) -> bool:
    if b"\n" in data or b"\r" in data:
        return False
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError:
        return False
    return True


def decode_line(line: bytes) -> Line:
    body = line.removesuffix(b"\n")
    try:
        cut = body.find(_RAW)
        if cut >= 0:
            if not body.endswith(b"}"):
                raise LakeFileError(f"a lake line that does not end with }}: {body[:80]!r}")
            header = msgspec.json.decode(body[:cut] + b"}", type=_Header)
            data = body[cut + len(_RAW) : -1]
        else:
            header = msgspec.json.decode(body, type=_Header)
            if header.b64 is None:
                raise LakeFileError(f"a lake line with neither raw nor b64: {body[:80]!r}")
            data = base64.b64decode(header.b64, validate=True)
    except LakeFileError:
        raise
    except (msgspec.DecodeError, ValueError) as exc:
        raise LakeFileError(f"not a lake line ({exc}): {body[:80]!r}") from exc
    return Line(header.epoch, header.seq, header.subject, header.time_ms, data)


def compress(lines: list[bytes]) -> bytes:
    """One gzip member (mtime 0: the same lines give the same bytes)."""
    return gzip.compress(b"".join(lines), compresslevel=6, mtime=0)


def append(root: Path, relative: str, committed: int, member: bytes) -> None:
    """Cut ``relative`` back to its committed length, append ``member``, fsync.

    The file (and any folder) is created when missing; a new name is made durable in its
    folder too, so that a committed index never points at a file a power cut took away.
    """
    path = root / relative
    made = _make_folders(root, path.parent)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, committed)
        os.lseek(fd, committed, os.SEEK_SET)
        view = memoryview(member)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created or made:
        for folder in {path.parent, *made}:
            _fsync_folder(folder)


def _make_folders(root: Path, folder: Path) -> list[Path]:
    """Create ``folder`` under ``root``; return the parents whose entries changed."""
    changed = []
    missing = []
    current = folder
    while not current.exists() and current != root:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir()
        changed.append(path.parent)
    return changed


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Prefix(io.RawIOBase):
    """The first ``length`` bytes of a file: what is committed, never an unfinished tail."""

    def __init__(self, path: Path, length: int) -> None:
        self._file = path.open("rb")
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        size = min(len(buffer), self._left)
        read = self._file.readinto(buffer[:size])
        self._left -= read
        return read

    def close(self) -> None:
        self._file.close()
        super().close()


def read_lines(path: Path, length: int | None = None) -> Iterator[Line]:
    """Every line of a lake file, up to its committed ``length`` (None: the whole file)."""
    size = path.stat().st_size if length is None else length
    if size > path.stat().st_size:
        raise LakeFileError(f"{path} is shorter than its committed {size} bytes")
    with (
        io.BufferedReader(_Prefix(path, size), 1 << 16) as raw,
        gzip.GzipFile(fileobj=raw, mode="rb") as unzipped,
    ):
        try:
            for line in unzipped:
                yield decode_line(line)
        except (OSError, EOFError, zlib.error) as exc:
            raise LakeFileError(f"{path}: {exc}") from exc


def read_member_line(path: Path, offset: int, line: int) -> Line:
    """The ``line``-th line of the gzip member that starts at ``offset`` (an index row)."""
    inflater = zlib.decompressobj(wbits=31)
    chunks = []
    with path.open("rb") as file:
        file.seek(offset)
        while not inflater.eof:
            block = file.read(1 << 16)
            if not block:
                raise LakeFileError(f"{path}: the member at {offset} is cut short")
            chunks.append(inflater.decompress(block))
    lines = b"".join(chunks).splitlines(keepends=True)
    if line >= len(lines):
        raise LakeFileError(f"{path}: no line {line} in the member at {offset}")
    return decode_line(lines[line])


def lake_files(root: Path) -> Iterator[str]:
    """The relative paths of every lake file on disk."""
    if root.exists():
        for path in sorted(root.glob(f"date=*/hour=*/*{SUFFIX}")):
            yield path.relative_to(root).as_posix()
