"""Any corpus distributed as archives: tar/zip/parquet shards of clips named by their ids.

This is how most people get AudioSet today (public mirrors publish it as shards) and the
generic path for other corpora. Each shard has a sha256; it is fetched with HTTP range resume
(or read from a local path), verified, and unpacked into `<dest>/audio/` (`unpack` keeps it
there). A shard once unpacked is marked done (`<dest>/.atdr/archives/<name>.done`, holding its
checksum) and never fetched again; the archive file itself is deleted unless `keep`. Metadata
files (class list, segment lists) are fetched beside `audio/` when absent.
`<dest>/archives_manifest.csv` lists every shard: name, source, sha256, files, status.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from atdr.atomic import atomic_path, write_text
from atdr.download.addresses import Digest
from atdr.download.http import fetch, fetch_once, is_url
from atdr.download.unpack import ParquetColumns, check_clip_id, unpack
from atdr.errors import AtdrError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Archive:
    source: str  # URL or local path
    digest: Digest

    @property
    def name(self) -> str:
        return PurePosixPath(urlsplit(self.source).path if is_url(self.source) else self.source).name


def download_archives(dest: str | Path, archives: list[Archive], files: dict[str, str] | None = None, *,
                      keep: bool = False, max_bytes: int | None = None, columns: ParquetColumns | None = None,
                      tries: int = 5, wait: float = 2.0, progress: bool = True) -> None:
    dest = Path(dest)
    state = dest / ".atdr" / "archives"
    names = [check_clip_id(a.name, a.source) for a in archives]
    twice = {n for n in names if names.count(n) > 1}
    if twice:
        raise AtdrError(f"two archives are named {min(twice)!r}: give each shard a distinct file name")
    for name, source in (files or {}).items():
        fetch_once(source, dest / check_clip_id(name, source), tries=tries, wait=wait, progress=progress)
    rows = []
    for i, archive in enumerate(archives, 1):
        done = state / f"{archive.name}.done"
        if done.is_file() and json.loads(done.read_text()).get("digest") == str(archive.digest):
            rows.append({**json.loads(done.read_text()), "status": "present"})
            continue
        log.info("archive %d of %d: %s", i, len(archives), archive.source)
        path = fetch(archive.source, state / archive.name, archive.digest, tries=tries, wait=wait, progress=progress)
        count = unpack(path, dest / "audio", max_bytes=max_bytes, columns=columns)
        record = {"name": archive.name, "source": archive.source, "digest": str(archive.digest), "files": count}
        write_text(done, json.dumps(record) + "\n")
        if path.parent == state and not keep:
            path.unlink()
        rows.append({**record, "status": "unpacked"})
        log.info("%s: %d files unpacked into %s", archive.name, count, dest / "audio")
    with atomic_path(dest / "archives_manifest.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["name", "source", "digest", "files", "status"])
        writer.writeheader()
        writer.writerows(rows)
    log.info("%d archives in %s (%d files)", len(rows), dest, sum(r["files"] for r in rows))
