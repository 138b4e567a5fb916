"""A corpus published as one archive (ESC-50, Speech Commands): fetched and verified, prepared
aside, moved into place whole.

The archive is fetched into `<dest>/.atdr/` (or read where it is, when the source is a local
path or `file://` URL), unpacked and converted in the scratch folder `<dest>/.atdr/preparing/`,
and what the preparation writes there is moved into `<dest>` only once all of it is done. A
preparation that fails (or is killed) leaves no unpacked files: the scratch folder is removed
(at the latest by the next start), and the verified archive is kept so that the next attempt does
not download it again. Once done, the archive is deleted unless `keep` (only one that atdr
downloaded: a local archive is the user's) and `<dest>/.atdr/<name>.done` marks the corpus as
complete.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from atdr.atomic import write_text
from atdr.download.addresses import Digest
from atdr.download.http import fetch, is_url
from atdr.download.unpack import merge_into, scratch_folder
from atdr.errors import AtdrError

log = logging.getLogger(__name__)

# (archive, a folder to unpack it into, the folder to write the corpus into) -> its number of clips
Prepare = Callable[[Path, Path, Path], int]


def download_corpus(name: str, title: str, dest: str | Path, archive_name: str, url: str, digest: Digest | None,
                    prepare: Prepare, *, keep: bool = False, tries: int = 5, wait: float = 2.0,
                    progress: bool = True) -> None:
    """The corpus `name` (called `title` in messages) in `dest`, from the archive at `url`."""
    dest = Path(dest)
    state = dest / ".atdr"
    done = state / f"{name}.done"
    if done.is_file():
        log.info("%s is already in %s", title, dest)
        return
    archive = fetch(url, state / archive_name, digest, tries=tries, wait=wait, progress=progress)
    with scratch_folder(state / "preparing") as work:
        (work / "corpus").mkdir()
        try:
            clips = prepare(archive, work / "unpacked", work / "corpus")
        except (AtdrError, OSError) as e:  # OSError: a full disk, say
            raise AtdrError(f"{e} ({title} not prepared: the unpacked files are removed; the archive {archive} is "
                            "kept for the next attempt)") from None
        merge_into(work / "corpus", dest)
    if not keep and is_url(url):
        archive.unlink()
    write_text(done, json.dumps({"clips": clips, "digest": str(digest)}) + "\n")
    log.info("%s: %d clips in %s", title, clips, dest)
