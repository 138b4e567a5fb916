"""What a run reads, fingerprinted: the data half of a run's identity (`atdr.runfolder`), so
that a run whose data changed is a new run, never the old one resumed or finished.

Cheap enough for every start, whatever the dataset's size: the datafiles, class list, weights
and norm stats by content (sha256: small beside the audio), a packed store by its table's
checksum read from its header (no clip is read; `ensure_packed` has packed it again if a clip's
file changed), and on the reference path, which reads the audio files themselves, each clip
file by its size and modification time (one `stat` per clip).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from atdr.config import DataConfig
from atdr.data.audio import file_stamp
from atdr.data.datafile import read_datafile
from atdr.data.loaders import store_of
from atdr.data.pack import store_fingerprint
from atdr.download.http import file_digest
from atdr.errors import AtdrError


def data_fingerprint(d: DataConfig) -> dict[str, str]:
    """{what: fingerprint} for everything a run of `d` reads; `what` is a file's path as the
    config gives it, or "the audio files of DATAFILE". The packed path's stores must exist."""
    files = [*(("datafile", path) for path in d.datafiles.values()), ("label csv", d.labels),
             ("weight file", d.weights), ("norm stats", d.norm_stats)]
    found = {str(path): f"sha256:{_digest(path, what)}" for what, path in files if path is not None}
    if d.loader == "packed":
        stores = {name: store_of(path) for name, path in d.datafiles.items()}
        if d.train_store:
            stores["train"] = d.train_store
        found |= {str(store): store_fingerprint(store) for store in stores.values()}
    else:
        found |= {f"the audio files of {path}": _clip_files(path) for path in d.datafiles.values()}
    return found


def _digest(path: Path, what: str) -> str:
    try:
        return file_digest(path)
    except OSError as e:
        raise AtdrError(f"cannot read {what} {path}: {e.strerror}") from None


def _clip_files(datafile: Path) -> str:
    stamps = [file_stamp(clip.wav) for clip in read_datafile(datafile, check_files=False)]
    return f"stat-sha256:{hashlib.sha256(json.dumps(stamps).encode()).hexdigest()}"
