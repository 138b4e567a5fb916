"""Unpacking archives that are not trusted: tar (any compression), zip and parquet shards.

Nothing lands outside the target folder: members with absolute paths or `..`, links that point
out of the folder, device files and (in zips) symbolic links are refused, as `tarfile`'s `data`
filter does. Sizes are bounded: each member may not produce more bytes than its archive declares
for it, and the declared sizes together may not exceed the free space of the target (or
`max_bytes`). Clip ids that become file names (parquet rows) must be plain names.

An archive is first unpacked into a staging folder inside the target and moved into place only
once all of it was accepted: a refused or broken archive leaves the target as it was.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from atdr.errors import AtdrError

CHUNK = 1 << 20
_CLIP_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.@-]{0,199}")
# Leading bytes of the audio formats a parquet cell may hold, when its name does not say.
_MAGIC = ((b"RIFF", ".wav"), (b"fLaC", ".flac"), (b"OggS", ".ogg"), (b"ID3", ".mp3"), (b"\xff\xfb", ".mp3"),
          (b"\xff\xf3", ".mp3"), (b"\xff\xf2", ".mp3"))
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".opus"}


def check_clip_id(clip_id: str, where: str) -> str:
    """`clip_id` if it is safe as a file name (letters, digits, `_-.@`, not starting with a dot)."""
    if not isinstance(clip_id, str) or not _CLIP_ID.fullmatch(clip_id):
        raise AtdrError(f"{where}: clip id {clip_id!r} is not a plain name (letters, digits, '_', '-', '.', '@'); refused")
    return clip_id


def member_path(name: str, archive: Path) -> PurePosixPath:
    """The relative path an archive member may be written to, or AtdrError."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name):
        raise AtdrError(f"{archive}: member {name!r} has an absolute path; refused, nothing was unpacked")
    if ".." in path.parts:
        raise AtdrError(f"{archive}: member {name!r} points outside the folder ('..'); refused, nothing was unpacked")
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts:
        raise AtdrError(f"{archive}: member {name!r} has no name; refused, nothing was unpacked")
    return PurePosixPath(*parts)


@dataclass(frozen=True)
class ParquetColumns:
    """Which parquet columns hold the clip id and the audio (None: guess from the schema)."""

    id: str | None = None
    audio: str | None = None


def archive_kind(path: Path) -> str:
    """"tar", "zip" or "parquet", from the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PAR1":
        return "parquet"
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise AtdrError(f"{path}: not a tar, zip or parquet archive")


def unpack(archive: str | Path, dest: str | Path, *, max_bytes: int | None = None,
           columns: ParquetColumns | None = None) -> int:
    """Unpack `archive` into `dest` (merged with what is there); return the number of files."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    limit = shutil.disk_usage(dest).free if max_bytes is None else max_bytes
    staging = dest / f".unpacking-{archive.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        kind = archive_kind(archive)
        if kind == "tar":
            count = _tar(archive, staging, limit)
        elif kind == "zip":
            count = _zip(archive, staging, limit)
        else:
            count = _parquet(archive, staging, limit, columns or ParquetColumns())
        _merge(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return count


def _too_big(archive: Path, size: int, limit: int) -> AtdrError:
    return AtdrError(f"{archive}: its members declare {size / 1e6:.1f} MB, more than the {limit / 1e6:.1f} MB "
                     "allowed (free space of the target, or --max-bytes); refused")


def _tar(archive: Path, staging: Path, limit: int) -> int:
    total = count = 0

    def accept(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        nonlocal total, count
        member_path(member.name, archive)  # refuse absolute names (the data filter would strip the '/')
        try:
            member = tarfile.data_filter(member, path)
        except tarfile.FilterError as e:
            raise AtdrError(f"{archive}: {e}; refused, nothing was unpacked") from None
        total += member.size
        if total > limit:
            raise _too_big(archive, total, limit)
        count += member.isfile()
        return member

    try:
        with tarfile.open(archive, "r|*") as tar:  # one pass, also over a compressed stream
            tar.extractall(staging, filter=accept)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise AtdrError(f"{archive}: broken tar archive ({e}); nothing was unpacked") from None
    return count


def _zip(archive: Path, staging: Path, limit: int) -> int:
    count = 0
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            declared = sum(i.file_size for i in infos)
            if declared > limit:
                raise _too_big(archive, declared, limit)
            for info in infos:
                target = staging / member_path(info.filename, archive)
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


def _merge(source: Path, dest: Path) -> None:
    """Move everything in `source` into `dest`, folder by folder; files replace files."""
    for item in source.iterdir():
        target = dest / item.name
        if item.is_dir() and not item.is_symlink() and target.is_dir() and not target.is_symlink():
            _merge(item, target)
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(item, target)
