"""The embedded dataset generator and `atdr prep` on AudioSet-format folders."""

import hashlib

import numpy as np
import pytest
import soundfile as sf

from atdr.data.datafile import read_datafile
from atdr.data.labels import LabelSet
from atdr.data.prep import index_audio, segments_to_clips
from atdr.data.segments import Segment, read_segments
from atdr.data.synth import CLASSES, synthesize
from atdr.errors import AtdrError


def digest(folder):
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_synth_is_deterministic_and_seed_dependent(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        synthesize(tmp_path / name, n_train=6, n_eval=3, seconds=0.5, seed=seed, progress=False)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")


def test_synth_writes_audioset_formats(tiny_synth):
    labels = LabelSet.read(tiny_synth / "class_labels_indices.csv")
    assert len(labels) == 10
    train = read_datafile(tiny_synth / "train.json", labels)  # validates labels and files
    ev = read_datafile(tiny_synth / "eval.json", labels)
    assert (len(train), len(ev)) == (48, 24)
    segs = read_segments(tiny_synth / "balanced_train_segments.csv")
    assert [s.labels for s in segs] == [c.labels for c in train]
    assert all(len(s.ytid) == 11 and s.end == 1.0 for s in segs)
    info = sf.info(train[0].wav)
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000)
    # 1-3 distinct events per clip; every class occurs in both splits.
    for split in (train, ev):
        assert all(1 <= len(c.labels) <= 3 and len(set(c.labels)) == len(c.labels) for c in split)
        assert {m for c in split for m in c.labels} == set(labels.mids)


def test_synth_classes_are_real_audioset_classes(audioset_fixtures):
    audioset = LabelSet.read(audioset_fixtures / "class_labels_indices.csv")
    for c in CLASSES:
        assert audioset.names[audioset.index[c.mid]] == c.name


def test_synth_supports_audioset_length_clips(tmp_path):
    synthesize(tmp_path, n_train=2, n_eval=1, seconds=10.0, progress=False)
    wav = read_datafile(tmp_path / "train.json")[0].wav
    assert sf.info(wav).frames == 160000
    x, _ = sf.read(wav)
    assert 0.001 < np.sqrt(np.mean(x**2)) and np.abs(x).max() <= 1.0


def test_prep_finds_clips_by_ytid_and_start_and_reports_missing(tmp_path):
    audio = tmp_path / "audio" / "sub"
    audio.mkdir(parents=True)
    for name in ("--PJHxphWEs_30.000.flac", "abc.wav", "ignored.txt"):
        (audio / name).write_bytes(b"")
    index = index_audio(tmp_path / "audio")
    assert index["--PJHxphWEs"].name == "--PJHxphWEs_30.000.flac" and "ignored" not in index
    labels = LabelSet.from_mids(["/m/a", "/m/b"])
    segs = [Segment("--PJHxphWEs", 30.0, 40.0, ("/m/a", "/m/b")), Segment("abc", 0.0, 10.0, ("/m/b",)),
            Segment("gone", 0.0, 10.0, ("/m/a",))]
    clips, missing = segments_to_clips(segs, index, labels)
    assert [c.extra["video_id"] for c in clips] == ["--PJHxphWEs", "abc"]
    assert clips[0].labels == ("/m/a", "/m/b") and missing == segs[2:]
    with pytest.raises(AtdrError, match="x.csv: segment abc: unknown label id '/m/b'"):
        segments_to_clips(segs[1:], index, LabelSet.from_mids(["/m/a"]), source="x.csv")
