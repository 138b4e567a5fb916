"""Small archives in the real shapes of ESC-50 and Speech Commands v0.02, written by the tests.

ESC-50-master.zip: `ESC-50-master/audio/{fold}-{src}-{take}-{target}.wav` (44.1 kHz mono),
`ESC-50-master/meta/esc50.csv` (filename, fold, target, category, esc10, src_file, take).
speech_commands_v0.02.tar.gz: `<word>/<hash>_nohash_<n>.wav` (16 kHz), `_background_noise_/`,
`validation_list.txt`, `testing_list.txt`, LICENSE, README.md, at the archive's top level, by
default below a root entry `./` (as `tar -C dir .` writes: `./`, `./<word>/`, `./<word>/<file>.wav`;
most likely the official archive's shape).
Either may hold a `broken` clip: bytes that are not audio, under a clip's name.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

ESC_CATEGORIES = ("dog", "rooster", "pig", "cow", "frog")


def tone(seconds: float, sr: int, freq: float, seed: int) -> bytes:
    """A wav file's bytes: a tone plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def esc50_zip(path: Path, per_class_and_fold: int = 2, seconds: float = 0.5, broken: int | None = None) -> list[dict]:
    """Write an ESC-50-shaped zip of len(ESC_CATEGORIES) classes x 5 folds (clip number `broken`
    not audio); return its meta rows."""
    rows = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for target, category in enumerate(ESC_CATEGORIES):
            for fold in range(1, 6):
                for take in range(per_class_and_fold):
                    src = 100000 + 100 * target + 10 * fold + take
                    name = f"{fold}-{src}-{'AB'[take % 2]}-{target}.wav"
                    audio = b"not audio" if len(rows) == broken else tone(seconds, 44100, 300 + 400 * target, src)
                    zf.writestr(f"ESC-50-master/audio/{name}", audio)
                    rows.append({"filename": name, "fold": fold, "target": target, "category": category,
                                 "esc10": "False", "src_file": str(src), "take": "AB"[take % 2]})
        header = "filename,fold,target,category,esc10,src_file,take\n"
        body = "".join(",".join(str(r[k]) for k in ("filename", "fold", "target", "category", "esc10", "src_file",
                                                     "take")) + "\n" for r in rows)
        zf.writestr("ESC-50-master/meta/esc50.csv", header + body)
        zf.writestr("ESC-50-master/LICENSE", "CC BY-NC 3.0\n")
    return rows


def speechcommands_tar(path: Path, words: tuple[str, ...], per_word: int = 3, seconds: float = 0.3, root: str = "./",
                       broken: int | None = None) -> dict[str, list[str]]:
    """Write a Speech-Commands-shaped tar.gz with its members below `root` (clip number `broken`
    not audio); return {"validation": [...], "testing": [...], "all": [...]}."""
    clips, validation, testing = [], [], []
    with tarfile.open(path, "w:gz") as tar:
        def add(name: str, data: bytes | None = None) -> None:
            info = tarfile.TarInfo(root + name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            else:
                info.size = len(data)
            tar.addfile(info, None if data is None else io.BytesIO(data))

        if root:
            add("")
        for w, word in enumerate(words):
            if root:
                add(f"{word}/")
            for n in range(per_word):
                name = f"{word}/cafe{n:04d}_nohash_{n}.wav"  # the same names recur across words, as in the real set
                add(name, b"not audio" if len(clips) == broken else tone(seconds, 16000, 200 + 50 * w, 1000 * w + n))
                clips.append(name)
                (validation if n == 1 else testing if n == 2 else []).append(name)
        if root:
            add("_background_noise_/")
        add("_background_noise_/white_noise.wav", tone(1.0, 16000, 0, 7))
        add("validation_list.txt", "".join(f"{c}\n" for c in validation).encode())
        add("testing_list.txt", "".join(f"{c}\n" for c in testing).encode())
        add("LICENSE", b"CC BY 4.0\n")
        add("README.md", b"Speech Commands v0.02\n")
    return {"validation": validation, "testing": testing, "all": clips}
