"""Speech Commands v0.02 (Warden 2018), 35 words, as the original's egs/speechcommands/prep_sc.py.

The official tarball (checksum-verified; flat, its names most likely `./<word>/<file>.wav` below a
root entry `./`, as `tar -C dir .` writes) unpacked into AudioSet's layout under `<dest>`
(prepared aside, moved into place whole: `atdr.download.corpus`):
- `audio/<word>/<word>-<file stem>.wav`: the 16 kHz clips, renamed so that every clip's id is
  unique (the official names repeat across words); `_background_noise_/` is kept beside, unused;
- `class_labels_indices.csv`: the original's 35 classes, in its order, ids `/m/spcmd00`...;
- the official splits as segment lists: `validation_list.csv`, `testing_list.csv`, and
  `train_list.csv` = every clip in neither (as prep_sc.py). The original selects the best epoch
  on validation and reports testing.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path

from tqdm import tqdm

from atdr.data.audio import audio_info
from atdr.data.labels import LabelSet
from atdr.data.segments import Segment, write_segments
from atdr.download.addresses import SPEECHCOMMANDS_DIGEST, SPEECHCOMMANDS_URL, Digest
from atdr.download.corpus import download_corpus
from atdr.download.unpack import check_clip_id, unpack
from atdr.errors import AtdrError

log = logging.getLogger(__name__)

# The class order of the original's speechcommands_class_labels_indices.csv (its checkpoints use it).
WORDS = ("backward", "follow", "five", "bed", "zero", "on", "learn", "two", "house", "tree", "dog", "stop", "seven",
         "eight", "down", "six", "forward", "cat", "right", "visual", "four", "wow", "no", "nine", "off", "three",
         "left", "marvin", "yes", "up", "sheila", "happy", "bird", "go", "one")
MID = "/m/spcmd{:02d}"
NOISE = "_background_noise_"
SPLITS = {"validation_list.csv": "validation_list.txt", "testing_list.csv": "testing_list.txt"}


def clip_id(official: str) -> str:
    """`right/bb05582b_nohash_3.wav` -> `right-bb05582b_nohash_3`."""
    word, name = official.split("/")
    return f"{word}-{Path(name).stem}"


def download_speechcommands(dest: str | Path, *, url: str = SPEECHCOMMANDS_URL,
                            digest: Digest | None = SPEECHCOMMANDS_DIGEST, keep: bool = False, tries: int = 5,
                            wait: float = 2.0, progress: bool = True) -> None:
    download_corpus("speechcommands", "Speech Commands", dest, "speech_commands_v0.02.tar.gz", url, digest,
                    partial(_prepare, progress=progress), keep=keep, tries=tries, wait=wait, progress=progress)


def _prepare(archive: Path, work: Path, out: Path, *, progress: bool) -> int:
    unpack(archive, work)
    words = sorted(p.name for p in work.iterdir() if p.is_dir() and p.name != NOISE)
    if sorted(WORDS) != words:
        raise AtdrError(f"{archive}: expected the 35 words of Speech Commands v0.02, found {len(words)} folders "
                        f"(missing: {sorted(set(WORDS) - set(words))}, extra: {sorted(set(words) - set(WORDS))})")
    every = sorted(f"{w}/{f.name}" for w in words for f in (work / w).iterdir() if f.suffix == ".wav")
    official = {}
    for csv_name, txt in SPLITS.items():
        if not (work / txt).is_file():
            raise AtdrError(f"{archive}: no {txt}")
        official[csv_name] = [line.strip() for line in (work / txt).read_text().splitlines() if line.strip()]
        unknown = set(official[csv_name]) - set(every)
        if unknown:
            raise AtdrError(f"{archive}: {txt} lists {len(unknown)} clips that are not in the archive, "
                            f"e.g. {min(unknown)}")
    held_out = set(official["validation_list.csv"]) | set(official["testing_list.csv"])
    splits = {"train_list.csv": [c for c in every if c not in held_out], **official}

    labels = LabelSet(tuple(MID.format(i) for i in range(len(WORDS))), WORDS)
    seconds = {}
    for clip in tqdm(every, desc="Speech Commands", unit="clip", disable=None if progress else True):
        try:
            info = audio_info(work / clip)
        except AtdrError as e:
            raise AtdrError(f"{archive}: {clip}: {e}") from None
        seconds[clip] = info.frames / info.sample_rate
        target = out / "audio" / clip.split("/")[0] / f"{check_clip_id(clip_id(clip), clip)}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / clip, target)
    for csv_name, clips in splits.items():
        segments = [Segment(clip_id(c), 0.0, round(seconds[c], 3), (labels.mids[WORDS.index(c.split("/")[0])],))
                    for c in clips]
        write_segments(out / csv_name, segments,
                       title=f"Speech Commands v0.02 {csv_name} (atdr download speechcommands)")
        log.info("%s: %d clips", csv_name, len(segments))
    labels.write(out / "class_labels_indices.csv")
    for name in (NOISE, "LICENSE", "README.md", *SPLITS.values()):
        if (work / name).exists():
            os.replace(work / name, out / name)
    return len(every)
