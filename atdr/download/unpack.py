"""Unpacking archives that are not trusted: tar (any compression), zip and parquet shards.

Nothing lands outside the target folder: members with absolute paths or `..`, links that point
out of the folder, device files and (in zips) symbolic links are refused, as `tarfile`'s `data`
filter does. Member names may start with `./`, and the archive's own root `./` (as
`tar -C dir .` writes) is skipped. Sizes are bounded: each member may not produce more bytes than
its archive declares for it, and the declared sizes together may not exceed the free space of the
target (or `max_bytes`). Clip ids that become file names (parquet rows) must be plain names.

An archive is accepted only whole: a file that ends early (a tar or compressed stream that stops
before its end marker, a zip or parquet file without the directory or footer at its end) is
reported as truncated, and a compressed tar's own checksum is checked. It is first unpacked into
a staging folder inside the target and moved into place only once all of it was accepted: a
refused, broken or truncated archive leaves the target as it was.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from atdr.errors import AtdrError

CHUNK = 1 << 20
_CLIP_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.@-]{0,199}")
# Leading bytes of the audio formats a parquet cell may hold, when its name does not say.
_MAGIC = ((b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg"), (b"ID3", ".mp3"), (b"\xff\xfb", ".mp3"),
          (b"\xff\xf3", ".mp3"), (b"\xff\xf2", ".mp3"))
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".opus"}
# Leading bytes of the compressions a tar may come in, and how to read each (checksum included).
_COMPRESSED = ((b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open),
               (b"\x5d\x00\x00\x80", lzma.open))
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")


def check_clip_id(clip_id: str, where: str) -> str:
    """`clip_id` if it is safe as a file name (letters, digits, `_-.@`, not starting with a dot)."""
    if not isinstance(clip_id, str) or not _CLIP_ID.fullmatch(clip_id):
        raise AtdrError(f"{where}: clip id {clip_id!r} is not a plain name (letters, digits, '_', '-', '.', '@'); refused")
    return clip_id


def member_path(name: str, archive: Path, *, folder: bool = False) -> PurePosixPath | None:
    """The relative path an archive member may be written to, or AtdrError; None for a `folder`
    that is the archive's root itself (`./`, as `tar -C dir .` writes): nothing to create."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name):
        raise AtdrError(f"{archive}: member {name!r} has an absolute path; refused, nothing was unpacked")
    if ".." in path.parts:
        raise AtdrError(f"{archive}: member {name!r} points outside the folder ('..'); refused, nothing was unpacked")
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts and folder:
        return None
    if not parts:
        raise AtdrError(f"{archive}: member {name!r} has no name; refused, nothing was unpacked")
    return PurePosixPath(*parts)


@dataclass(frozen=True)
class ParquetColumns:
    """Which parquet columns hold the clip id and the audio (None: guess from the schema)."""

    id: str | None = None
    audio: str | None = None


def archive_kind(path: Path) -> str:
    """"tar", "zip" or "parquet", from the file's first bytes (a truncated file still has them)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(_ZIP) or zipfile.is_zipfile(path):
        return "zip"
    if head.startswith(tuple(magic for magic, _ in _COMPRESSED)) or head[257:262] == b"ustar":
        return "tar"
    try:
        if tarfile.is_tarfile(path):  # an old tar without the ustar mark
            return "tar"
    except (EOFError, OSError):
        pass
    raise AtdrError(f"{path}: not a tar, zip or parquet archive")


def truncated(archive: Path, where: str) -> AtdrError:
    return AtdrError(f"{archive} is truncated: it ends after {archive.stat().st_size} bytes, {where} (an incomplete "
                     "download or copy); get the whole file (and its checksum) again. Nothing was unpacked")


@contextmanager
def scratch_folder(path: Path) -> Iterator[Path]:
    """`path` as a new empty folder, removed when the block ends, also when it fails: where work
    that may break midway (unpacking, converting) goes, so that a failure leaves nothing behind."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def unpack(archive: str | Path, dest: str | Path, *, max_bytes: int | None = None,
           columns: ParquetColumns | None = None) -> int:
    """Unpack `archive` into `dest` (merged with what is there); return the number of files."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    limit = shutil.disk_usage(dest).free if max_bytes is None else max_bytes
    with scratch_folder(dest / f".unpacking-{archive.name}") as staging:
        kind = archive_kind(archive)
        try:
            if kind == "tar":
                count = _tar(archive, staging, limit)
            elif kind == "zip":
                count = _zip(archive, staging, limit)
            else:
                count = _parquet(archive, staging, limit, columns or ParquetColumns())
        except OSError as e:  # the system's: a full disk, no permission
            raise AtdrError(f"cannot unpack {archive} into {dest}: {e.strerror or e}; nothing was unpacked") from None
        merge_into(staging, dest)
    return count


def _too_big(archive: Path, size: int, limit: int) -> AtdrError:
    return AtdrError(f"{archive}: its members declare {size / 1e6:.1f} MB, more than the {limit / 1e6:.1f} MB "
                     "allowed (free space of the target, or --max-bytes); refused")


class _EndsEarly(EOFError):
    """A tar that stops before its end-of-archive marker."""


class _WholeTarHeader(tarfile.TarInfo):
    """A tar member header that may end the archive only as its end marker (a block of zeros):
    where the data stops or is garbled instead, tarfile would end the archive silently."""

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo:
        if len(buf) < tarfile.BLOCKSIZE:
            raise _EndsEarly("before its end-of-archive marker")
        try:
            return super().frombuf(buf, encoding, errors)
        except tarfile.InvalidHeaderError as e:
            raise tarfile.ReadError(f"a member header is invalid: {e}") from None


def _decompressed(raw: BinaryIO) -> BinaryIO:
    """`raw` as its uncompressed bytes (EOFError where it ends early); a plain tar as it is."""
    head = raw.read(6)
    raw.seek(0)
    opener = next((open_ for magic, open_ in _COMPRESSED if head.startswith(magic)), None)
    return opener(raw) if opener else raw


def _tar(archive: Path, staging: Path, limit: int) -> int:
    total = count = 0

    def accept(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        nonlocal total, count
        # refuse absolute names (the data filter would strip the '/'); skip the root './'
        if member_path(member.name, archive, folder=member.isdir()) is None:
            return None
        try:
            member = tarfile.data_filter(member, path)
        except tarfile.FilterError as e:
            raise AtdrError(f"{archive}: {e}; refused, nothing was unpacked") from None
        total += member.size
        if total > limit:
            raise _too_big(archive, total, limit)
        count += member.isfile()
        return member

    with open(archive, "rb") as raw:
        try:
            stream = _decompressed(raw)
            with tarfile.open(fileobj=stream, mode="r|", tarinfo=_WholeTarHeader) as tar:  # one pass
                tar.extractall(staging, filter=accept)
            while stream.read(CHUNK):  # to the end of a compressed stream, where its checksum is
                pass
        except EOFError as e:  # ours, or a decompressor's
            raise truncated(archive, str(e) if isinstance(e, _EndsEarly) else "inside its compressed data") from None
        except (tarfile.TarError, lzma.LZMAError, zlib.error, OSError) as e:
            if isinstance(e, OSError) and e.errno is not None:  # the system's (a full disk), not the data's
                raise
            if isinstance(e, tarfile.ReadError) and stream is raw and raw.tell() == archive.stat().st_size:
                raise truncated(archive, "inside a member") from None
            raise AtdrError(f"{archive}: broken tar archive ({e}); nothing was unpacked") from None
    return count


def _zip(archive: Path, staging: Path, limit: int) -> int:
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:  # its directory is at its end, the first thing a cut loses
        raise truncated(archive, "without the central directory a zip ends with") from None
    count = 0
    try:
        with zf:
            infos = zf.infolist()
            declared = sum(i.file_size for i in infos)
            if declared > limit:
                raise _too_big(archive, declared, limit)
            for info in infos:
                relative = member_path(info.filename, archive, folder=info.is_dir())
                if relative is None:
                    continue
                target = staging / relative
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise AtdrError(f"{archive}: member {info.filename!r} is a symbolic link; refused, nothing was unpacked")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with zf.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        if written > info.file_size:  # zipfile stops at the declared size; never trust that alone
                            raise AtdrError(f"{archive}: member {info.filename!r} is larger than its declared "
                                            f"{info.file_size} bytes; refused, nothing was unpacked")
                        out.write(chunk)
                count += 1
    except zipfile.BadZipFile as e:
        raise AtdrError(f"{archive}: a member does not match its declared size or checksum ({e}): a corrupt or "
                        "crafted archive; refused, nothing was unpacked") from None
    return count


def _parquet(archive: Path, staging: Path, limit: int, columns: ParquetColumns) -> int:
    """One file per row, `<archive stem>/<id><ext>`, from the id and audio columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(archive, "rb") as f:
        f.seek(-4, os.SEEK_END)
        if f.read(4) != b"PAR1":  # a parquet file ends with its footer and this mark
            raise truncated(archive, "without the footer a parquet file ends with")
    try:
        shard = pq.ParquetFile(archive)
    except (pa.ArrowException, OSError) as e:
        raise AtdrError(f"{archive}: broken parquet file ({e})") from None
    meta = shard.metadata
    declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if declared > limit:
        raise _too_big(archive, declared, limit)
    names = shard.schema_arrow.names
    id_column = columns.id or next((c for c in ("video_id", "ytid", "id") if c in names), None)
    audio_column = columns.audio or "audio"
    for what, column in (("id", id_column), ("audio", audio_column)):
        if column not in names:
            raise AtdrError(f"{archive}: no {what} column {column or ''!r} (columns: {', '.join(names)}); "
                            f"name it with --{what}-column")
    folder = staging / check_clip_id(archive.name.split(".")[0], str(archive))
    folder.mkdir()
    count = 0
    for batch in shard.iter_batches(batch_size=64, columns=[id_column, audio_column]):
        for clip_id, cell in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
            where = f"{archive}: row {count}"
            data, name = (cell.get("bytes"), cell.get("path")) if isinstance(cell, dict) else (cell, None)
            if not isinstance(data, bytes) or not data:
                raise AtdrError(f"{where}: no audio bytes in column {audio_column!r}")
            path = folder / f"{check_clip_id(str(clip_id), where)}{_suffix(data, name, where)}"
            if path.exists():
                raise AtdrError(f"{where}: clip id {clip_id!r} appears twice in the shard")
            path.write_bytes(data)
            count += 1
    return count


def _suffix(data: bytes, name: str | None, where: str) -> str:
    suffix = PurePosixPath(name).suffix.lower() if name else ""
    if suffix in AUDIO_SUFFIXES:
        return suffix
    for magic, guess in _MAGIC:
        if data.startswith(magic):
            return guess
    raise AtdrError(f"{where}: audio of unknown format (not wav, flac, ogg or mp3)")


def merge_into(source: Path, dest: Path) -> None:
    """Move everything in `source` into `dest`, folder by folder; files replace files."""
    for item in source.iterdir():
        target = dest / item.name
        if item.is_dir() and not item.is_symlink() and target.is_dir() and not target.is_symlink():
            merge_into(item, target)
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(item, target)
