"""Packed clips: a datafile's audio decoded once, at 16 kHz mono, in one file read by memory map.

`pack` decodes every clip of a datafile once (downmixed and resampled as `load_audio` does) and
stores it as 16-bit PCM (`pcm16`, the default: no decoding when read) or as one FLAC stream per
clip (`flac`: about half the size, decoded when read), with a CRC-32 per clip. Readers
(`PackedStore`, `PackedDataset`) memory-map the file: one mapping per process, no file-system
call per clip. Copying a split to node-local scratch is one file copy.

Clips that are already 16-bit at 16 kHz (AudioSet's downloads) come back bit-identical to what
`load_audio` reads; others are rounded to 16 bits once, after resampling.

File layout (little-endian):

    [0, 4096)      header: magic b"ATDRPACK", version, offset/size/CRC-32 of the table and the metadata
    [4096, ...)    the clips' bytes back to back, in datafile order
    table          per clip: offset, bytes, samples (-1: could not be decoded), CRC-32 of its bytes
    metadata       json: codec, sample rate, and per clip `wav` (relative to the datafile), `labels` and
                   `sources`: the size and modification time (ns) of the file it was packed from

Writing is resumable: clips are appended to `.NAME.partial` beside the output and recorded in
`.NAME.journal` after their bytes are written; a killed `pack` continues after the last recorded
clip (dropping a half-written one). Only a complete store, header written last, is renamed to
NAME. Clips that cannot be decoded are listed in a report (csv: wav, error) and read as `None`.

A store is out of date when its datafile lists other clips or labels, or when a clip's file was
rewritten since it was packed (`PackedStore.outdated`; `atdr.data.loaders.ensure_packed` packs it
again).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import logging
import multiprocessing
import os
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset
from tqdm import tqdm
from zlib_ng import zlib_ng  # zlib's CRC-32, about 20x faster: every read of a clip checks its bytes

from atdr.atomic import atomic_path, writing_to
from atdr.config import AugmentConfig
from atdr.data.audio import SAMPLE_RATE, AudioConversionWarning, as_float, file_stamp, load_audio
from atdr.data.datafile import Clip, read_datafile
from atdr.data.dataset import WaveTransform, mix_targets, read_partner
from atdr.data.labels import LabelSet
from atdr.errors import AtdrError

log = logging.getLogger(__name__)

CODECS = ("pcm16", "flac")
MAGIC = b"ATDRPACK"
VERSION = 1
DATA_OFFSET = 4096
# magic, version, table offset, table bytes, metadata offset, metadata bytes, table CRC, metadata CRC
_HEADER = struct.Struct("<8sIQQQQII")
_RECHECKED = 256  # clips at the end of an interrupted store checked before resuming
_TABLE = np.dtype([("offset", "<u8"), ("nbytes", "<u8"), ("samples", "<i8"), ("crc32", "<u4")])


@dataclass(frozen=True)
class PackSummary:
    clips: int
    failed: int
    bytes: int
    resumed: int  # clips found already packed by an interrupted run


def pack(datafile: str | Path, out: str | Path, codec: str = "pcm16", report: str | Path | None = None,
         workers: int = 0, progress: bool = True) -> PackSummary:
    """Pack the clips of `datafile` into the store `out`; list undecodable clips in `report`
    (default: OUT stem + `_undecodable.csv`). `workers` decoding processes (0: this one)."""
    if codec not in CODECS:
        raise AtdrError(f"unknown codec {codec!r}: use {' or '.join(CODECS)}")
    datafile, out = Path(datafile), Path(out)
    report = Path(report) if report else out.with_name(f"{out.stem}_undecodable.csv")
    clips = read_datafile(datafile, check_files=False)  # a missing file is reported like a broken one
    wavs = [os.path.relpath(clip.wav, datafile.parent) for clip in clips]
    labels = [",".join(clip.labels) for clip in clips]
    sources = [file_stamp(clip.wav) for clip in clips]  # before decoding: never newer than the bytes
    identity = {"codec": codec, "sha256": hashlib.sha256(json.dumps([wavs, labels, sources]).encode()).hexdigest()}

    with writing_to(out), _Journal(out, identity) as journal:
        resumed = len(journal.rows)
        if resumed:
            log.info("%s: resuming after %d of %d clips", out, resumed, len(clips))
        notes: set[str] = set()
        bar = tqdm(total=len(clips), initial=resumed, desc=f"pack {out.name}", unit="clip",
                   disable=None if progress else True)
        for data, samples, error, conversions in _decoded(clips[resumed:], codec, workers):
            journal.append(data, samples, error)
            for note in conversions - notes:  # said once, as load_audio does
                warnings.warn(note, AudioConversionWarning, stacklevel=2)
            notes |= conversions
            bar.update()
        bar.close()
        rows = journal.rows
        failed = [(wavs[i], row[3]) for i, row in enumerate(rows) if row[1] < 0]
        with atomic_path(report) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["wav", "error"])
            writer.writerows(failed)
        nbytes = np.array([row[0] for row in rows], dtype=np.uint64)
        table = np.zeros(len(rows), dtype=_TABLE)
        table["offset"], table["nbytes"] = DATA_OFFSET + np.cumsum(nbytes) - nbytes, nbytes
        table["samples"], table["crc32"] = [row[1] for row in rows], [row[2] for row in rows]
        metadata = {"format": "atdr-pack", "codec": codec, "sample_rate": SAMPLE_RATE, "wav": wavs, "labels": labels,
                    "sources": sources}
        size = journal.finish(table.tobytes(), json.dumps(metadata).encode())
    if failed:
        log.warning("%s: %d of %d clips could not be decoded (listed in %s)", out, len(failed), len(clips), report)
    return PackSummary(len(clips), len(failed), size, resumed)


def _decoded(clips: list[Clip], codec: str, workers: int) -> Iterator[tuple[bytes, int, str, set[str]]]:
    """Each clip's stored bytes and samples (-1 and an error when it cannot be decoded), in order."""
    tasks = [(clip.wav, codec) for clip in clips]
    if workers <= 0:
        yield from map(_decode, tasks)
        return
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_one_thread) as pool:
        yield from pool.imap(_decode, tasks, chunksize=8)


def _one_thread() -> None:
    torch.set_num_threads(1)  # resampling in each of several processes


def _decode(task: tuple[str, str]) -> tuple[bytes, int, str, set[str]]:
    path, codec = task
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            wave = load_audio(path).numpy()
        except AtdrError as e:
            return b"", -1, str(e), set()
    pcm = np.clip(np.round(wave * 32768.0), -32768, 32767).astype("<i2")
    if codec == "flac":
        buffer = io.BytesIO()
        sf.write(buffer, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        data = buffer.getvalue()
    else:
        data = pcm.tobytes()
    return data, len(pcm), "", {str(w.message) for w in caught}


class _Journal:
    """The partial store and its journal: one json line per clip, `[bytes, samples, crc32,
    error]`, written after the clip's bytes; the first line says what is being packed."""

    def __init__(self, out: Path, identity: dict) -> None:
        self.out = out
        self.partial = out.with_name(f".{out.name}.partial")
        self.journal = out.with_name(f".{out.name}.journal")
        self.identity = identity
        self.rows: list[tuple[int, int, int, str]] = []

    def __enter__(self) -> _Journal:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        end = self._recover()
        self.data = open(self.partial, "r+b" if end else "w+b")
        if not end:
            self.data.write(b"\0" * DATA_OFFSET)
            end = DATA_OFFSET
        self.data.truncate(end)
        self.data.seek(end)
        lines = [json.dumps(self.identity)] + [json.dumps(row) for row in self.rows]
        with atomic_path(self.journal) as tmp:
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        self.log = open(self.journal, "a", encoding="utf-8")
        return self

    def _recover(self) -> int:
        """Keep the clips of an interrupted run of the same job; the end of their bytes (0: none)."""
        if not (self.partial.exists() and self.journal.exists()):
            return 0
        lines = self.journal.read_text(encoding="utf-8").splitlines()
        try:
            if not lines or json.loads(lines[0]) != self.identity:
                return 0
        except json.JSONDecodeError:
            return 0
        rows, size = [], self.partial.stat().st_size
        for line in lines[1:]:
            try:
                nbytes, samples, crc, error = json.loads(line)
            except (json.JSONDecodeError, ValueError, TypeError):
                break  # a line cut short by the interruption
            rows.append((nbytes, samples, crc, error))
        ends = DATA_OFFSET + np.cumsum([0] + [row[0] for row in rows])
        rows = rows[:int(np.searchsorted(ends, size, side="right")) - 1]  # whose bytes are all there
        # A clip's bytes are flushed before its journal line, so only the last clips can be torn
        # (by a crash of the machine): check those against their CRC.
        with open(self.partial, "rb") as f:
            for index in range(max(0, len(rows) - _RECHECKED), len(rows)):
                f.seek(int(ends[index]))
                if zlib_ng.crc32(f.read(rows[index][0])) != rows[index][2]:
                    rows = rows[:index]
                    break
        self.rows = rows
        return int(ends[len(rows)])

    def append(self, data: bytes, samples: int, error: str) -> None:
        self.data.write(data)
        self.data.flush()  # the bytes reach the file before the journal says they are there
        row = (len(data), samples, zlib_ng.crc32(data), error)
        self.log.write(json.dumps(row) + "\n")
        self.log.flush()
        self.rows.append(row)

    def finish(self, table: bytes, metadata: bytes) -> int:
        """Append the table and metadata, write the header, rename into place; the file's size."""
        table_offset = self.data.tell()
        self.data.write(table)
        self.data.write(metadata)
        self.data.seek(0)
        self.data.write(_HEADER.pack(MAGIC, VERSION, table_offset, len(table), table_offset + len(table),
                                     len(metadata), zlib_ng.crc32(table), zlib_ng.crc32(metadata)))
        self.data.flush()
        os.fsync(self.data.fileno())
        self.data.close()
        os.replace(self.partial, self.out)
        self.journal.unlink()
        return table_offset + len(table) + len(metadata)

    def __exit__(self, *exc: object) -> None:
        for f in (self.data, self.log):
            f.close()


def _read_header(f: io.BufferedReader, path: Path) -> tuple[int, int, int, int, int, int]:
    """A store's table offset and size, metadata offset and size, table and metadata CRC-32."""
    header = f.read(_HEADER.size)
    if len(header) < _HEADER.size or header[:8] != MAGIC:
        raise AtdrError(f"{path}: not a packed store (write one with `atdr pack`)")
    _, version, table_at, table_size, meta_at, meta_size, table_crc, meta_crc = _HEADER.unpack(header)
    if version != VERSION:
        raise AtdrError(f"{path}: packed store version {version}, this atdr reads {VERSION}: pack it again")
    size = os.fstat(f.fileno()).st_size
    if size != meta_at + meta_size:
        raise AtdrError(f"{path}: truncated or damaged store ({size} bytes, expected {meta_at + meta_size}): "
                        "copy or pack it again")
    return table_at, table_size, meta_at, meta_size, table_crc, meta_crc


def store_fingerprint(path: str | Path) -> str:
    """What a store holds, from its header alone (no clip is read): the checksum of its table,
    which holds every clip's CRC-32, size and place. Names and labels are its datafile's."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            _, table_size, _, _, table_crc, _ = _read_header(f, path)
    except OSError as e:
        raise AtdrError(f"cannot read packed store {path}: {e.strerror}") from None
    return f"crc32:{table_crc:08x}/{table_size // _TABLE.itemsize}"


class PackedStore:
    """A store written by `pack`, memory-mapped on first read in each process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                table_at, table_size, meta_at, meta_size, table_crc, meta_crc = _read_header(f, self.path)
                f.seek(table_at)
                table = f.read(table_size)
                metadata = f.read(meta_size)
        except OSError as e:
            raise AtdrError(f"cannot read packed store {self.path}: {e.strerror}") from None
        if zlib_ng.crc32(table) != table_crc or zlib_ng.crc32(metadata) != meta_crc:
            raise AtdrError(f"{self.path}: the store's index fails its checksum (corrupt): copy or pack it again")
        self.table = np.frombuffer(table, dtype=_TABLE)
        meta = json.loads(metadata)
        self.codec: str = meta["codec"]
        self.wavs: list[str] = meta["wav"]
        self.labels: list[str] = meta["labels"]
        self.sources: list[list[int] | None] | None = meta.get("sources")  # None: packed before they were recorded
        self._map: np.ndarray | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.table)

    def __getstate__(self) -> dict:  # a process that receives the store maps it itself
        return {**self.__dict__, "_map": None, "_pid": None}

    def _data(self) -> np.ndarray:
        # Copy-on-write: a clip is handed out as a view of the mapping, not copied; writing to it
        # would change this process's copy of the page, never the file.
        if self._pid != os.getpid():
            self._map, self._pid = np.memmap(self.path, dtype=np.uint8, mode="c"), os.getpid()
        return self._map

    def read(self, index: int) -> np.ndarray | None:
        """Clip `index` as int16 samples at 16 kHz, or None if it could not be decoded when packed.
        Raises `AtdrError` if its bytes fail their checksum."""
        offset, nbytes, samples, crc = self.table[index].tolist()
        if samples < 0:
            return None
        data = self._data()[offset:offset + nbytes]
        if zlib_ng.crc32(data) != crc:
            raise AtdrError(f"{self.path}: clip {index} ({self.wavs[index]}) fails its checksum: the store is "
                            "corrupt; copy or pack it again")
        if self.codec == "flac":
            return sf.read(io.BytesIO(data), dtype="int16")[0]
        return data.view("<i2")

    def verify(self, progress: bool = True) -> int:
        """Check every clip's checksum (raises `AtdrError` at the first bad one); clips checked."""
        for index in tqdm(range(len(self)), desc=f"verify {self.path.name}", unit="clip",
                          disable=None if progress else True):
            self.read(index)
        return len(self)

    def check_matches(self, clips: list[Clip]) -> None:
        """Raise `AtdrError` unless the store holds these clips (file names and labels, in order)."""
        mismatch = self._mismatch(clips)
        if mismatch:
            raise AtdrError(f"{self.path}: {mismatch}: pack it again")

    def _mismatch(self, clips: list[Clip]) -> str | None:
        if len(clips) != len(self):
            return f"packed from another datafile ({len(self)} clips, the datafile has {len(clips)})"
        for index, (clip, wav, labels) in enumerate(zip(clips, self.wavs, self.labels)):
            if Path(clip.wav).name != Path(wav).name or ",".join(clip.labels) != labels:
                return (f"packed from another datafile (clip {index} is {wav} [{labels}], the datafile has "
                        f"{clip.wav} [{','.join(clip.labels)}])")
        return None

    def outdated(self, clips: list[Clip]) -> str | None:
        """Why the store is not what `pack` would write for the datafile's `clips` now: other clips
        or labels, or a clip's file rewritten since it was packed (another size or modification
        time); None if it is current. A file no longer there is not checked (a store copied
        without its audio stays usable), nor are the files of a store packed before atdr recorded
        them."""
        mismatch = self._mismatch(clips)
        if mismatch or self.sources is None:
            return mismatch
        for clip, packed in zip(clips, self.sources):
            now = file_stamp(clip.wav)
            if now is not None and list(now) != packed:
                return f"{clip.wav} changed since it was packed"
        return None


    def locate(self, clips: list[Clip]) -> np.ndarray:
        """Where each clip is in the store, found by its audio file: for a datafile holding some of
        the store's clips, maybe with other labels (the analyses' training sets). The store's paths
        are read relative to its folder, beside the datafile it was packed from."""
        index = {_key(os.path.join(self.path.parent, wav)): i for i, wav in enumerate(self.wavs)}
        found = np.array([index.get(_key(clip.wav), -1) for clip in clips], dtype=np.int64)
        if (found < 0).any():
            missing = clips[int(np.argmax(found < 0))].wav
            raise AtdrError(f"{self.path} does not hold {missing} ({int((found < 0).sum())} of the {len(clips)} clips "
                            "are not in it): give the store of a datafile that has them")
        return found


@functools.lru_cache(maxsize=None)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def _key(path: str) -> str:
    """A file's path with its folder's links resolved: the same file, however a datafile wrote it."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(_real_folder(folder), name)


class PackedDataset(Dataset):
    """A store's clips as `(wave int16 [samples], target [classes], seed, partner)` for
    `collate_waves` and `BatchPipeline`. Index with an int (evaluation) or with `(index, seed)`
    from `EpochSampler` (training). A clip that could not be decoded when packed is `None` with
    `skip_unreadable` (logged once), an error otherwise.

    The store is the datafile's own (checked), or, with `positions` (`PackedStore.locate`), one
    holding these clips among others. `wave_transform(wave, index, dataset)`, if given, changes
    each clip's waveform, then float in [-1, 1) (robustness probing: `atdr.data.perturb`).
    With `mixup` (with `mixup > 0` and `mixup_partner: dataset`), training items are mixed as the
    original's: a partner drawn from the whole dataset by the item's seed (`read_partner`, the
    reference dataset's own draw) is read from the store; the item's target is mixed, and
    `partner` is `(partner's wave int16, λ)` for `collate_waves` to mix the waveforms with (None:
    not mixed).
    """

    def __init__(self, store: PackedStore, clips: list[Clip], labels: LabelSet, skip_unreadable: bool = True,
                 positions: np.ndarray | None = None, wave_transform: WaveTransform | None = None,
                 mixup: AugmentConfig | None = None) -> None:
        if positions is None:
            store.check_matches(clips)
        elif len(positions) != len(clips):
            raise ValueError(f"{len(positions)} positions for {len(clips)} clips")
        self.store = store
        self.clips = clips
        self.labels = labels
        self.skip_unreadable = skip_unreadable
        self.positions = positions
        self.wave_transform = wave_transform
        self.mixup = mixup if mixup is not None and mixup.mixup > 0 and mixup.mixup_partner == "dataset" else None
        self._reported: set[int] = set()

    def __len__(self) -> int:
        return len(self.clips)

    def _read(self, index: int) -> np.ndarray | None:
        wave = self.store.read(index if self.positions is None else int(self.positions[index]))
        if wave is None:
            message = f"{self.clips[index].wav} could not be decoded when {self.store.path} was packed"
            if not self.skip_unreadable:
                raise AtdrError(message)
            if index not in self._reported:
                self._reported.add(index)
                log.warning("skipping unreadable clip: %s", message)
        return wave

    def wave(self, index: int) -> torch.Tensor | None:
        """Clip `index` as float samples in [-1, 1) (`None`: it could not be decoded)."""
        wave = self._read(index)
        return None if wave is None else as_float(torch.from_numpy(wave))

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int, tuple | None] | None:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        wave = self._read(index)
        if wave is None:
            return None
        wave = torch.from_numpy(wave)
        if self.wave_transform is not None:
            wave = self.wave_transform(as_float(wave), index, self)
        target = self.labels.encode(self.clips[index].labels)
        partner = None
        if self.mixup is not None and isinstance(key, tuple):
            target, partner = self._mixup(target, seed)
        return wave, torch.from_numpy(target), seed, partner

    def _mixup(self, target: np.ndarray, seed: int) -> tuple[np.ndarray, tuple[torch.Tensor, float] | None]:
        """A training item's mixed target and its partner `(wave, λ)`, or its own target alone
        (not drawn, or the partner could not be read)."""
        partner = read_partner(self, np.random.default_rng(seed), self.mixup, self._read)
        if partner is None:
            return target, None
        other, other_target, lam = partner
        return mix_targets(target, other_target, lam), (torch.from_numpy(other), lam)
