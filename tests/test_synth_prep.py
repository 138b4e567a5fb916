"""The embedded dataset generator; `atdr link` and `atdr prep` on folders of real files in every
format (your own recordings and AudioSet's layout). `atdr split`: test_split.py."""

import csv
import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from atdr.cli import main
from atdr.data.audio import load_audio
from atdr.data.datafile import read_datafile
from atdr.data.labels import LabelSet, audioset_labels, labels_for
from atdr.data.prep import index_audio, prepare
from atdr.data.segments import Segment, read_segments, write_segments
from atdr.data.synth import CLASSES, synthesize
from atdr.errors import AtdrError
from conftest import RECORDING_FORMATS, make_recordings

CLASS_NAMES = {c.mid: c.name for c in CLASSES}


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
    silence = np.zeros(1600, dtype=np.float32)
    for name in ("--PJHxphWEs_30.000.flac", "abc.wav"):
        sf.write(audio / name, silence, 16000)
    (audio / "notes.txt").write_text("not audio")
    index = index_audio(tmp_path / "audio")
    assert index.readable["--PJHxphWEs"].name == "--PJHxphWEs_30.000.flac" and "notes" in index.unsupported
    segs = [Segment("--PJHxphWEs", 30.0, 40.0, ("/m/a", "/m/b")), Segment("abc", 0.0, 10.0, ("/m/b",)),
            Segment("gone", 0.0, 10.0, ("/m/a",))]
    write_segments(tmp_path / "x.csv", segs)
    result = prepare([tmp_path / "x.csv"], index, LabelSet.from_mids(["/m/a", "/m/b"]), progress=False)
    assert [c.extra["video_id"] for c in result.clips] == ["--PJHxphWEs", "abc"]
    assert result.clips[0].labels == ("/m/a", "/m/b") and result.missing == segs[2:] and not result.unreadable
    with pytest.raises(AtdrError, match="x.csv: segment --PJHxphWEs: unknown label id '/m/b'"):
        prepare([tmp_path / "x.csv"], index, LabelSet.from_mids(["/m/a"]), progress=False)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recordings")
    bad = make_recordings(folder, n_clips=12)
    return folder, bad


def test_prep_reads_every_format_and_accounts_for_every_segment(recordings, tmp_path, caplog):
    folder, bad = recordings
    caplog.set_level(logging.INFO)
    assert main(["link", str(folder), str(tmp_path / "download"), "--segments", "recordings.csv"]) == 0
    data = tmp_path / "data"
    assert main(["prep", "--segments", str(tmp_path / "download" / "recordings.csv"), "--audio",
                 str(tmp_path / "download" / "audio"), "--labels", str(tmp_path / "download" / "class_labels_indices.csv"),
                 "--out", str(data / "all.json")]) == 0
    clips = read_datafile(data / "all.json")
    assert sorted(Path(c.wav).suffix for c in clips) == sorted(f".{f[0]}" for f in RECORDING_FORMATS * 2)
    for clip in clips:  # any rate and channel count: one second at 16 kHz, mono
        assert abs(len(load_audio(clip.wav)) - 16000) <= 2, clip.wav
    missing = read_segments(data / "all_missing.csv")
    assert [s.ytid for s in missing] == ["absent"]
    with open(data / "all_unreadable.csv", newline="") as f:
        unreadable = {r["YTID"]: r for r in csv.DictReader(f)}
    assert set(unreadable) == {"corrupt", "phone"}
    assert unreadable["phone"]["problem"].startswith("unsupported format .m4a")
    assert "cannot read audio" in unreadable["corrupt"]["problem"] and unreadable["corrupt"]["file"].endswith("corrupt.wav")
    log = caplog.text
    assert "12 of 15 listed segments have a readable clip; 1 missing; 2 unreadable; 1 .m4a file present but not a supported format" in log
    assert "note: 2 clips at 8000 Hz will be resampled to 16000 Hz" in log
    assert "note: 2 clips at 96000 Hz will be resampled to 16000 Hz" in log
    assert "note: 6 clips with more than one channel will be downmixed to mono" in log


def test_prep_verify_decodes_every_clip(tmp_path):
    """A FLAC whose header is fine but whose data is damaged: only --verify finds it."""
    audio = tmp_path / "audio"
    audio.mkdir()
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 48000).astype(np.float32)
    sf.write(audio / "good.flac", wave, 16000)
    damaged = bytearray((audio / "good.flac").read_bytes())
    damaged[len(damaged) // 3:len(damaged) // 3 + 2000] = bytes(2000)
    (audio / "damaged.flac").write_bytes(damaged)
    write_segments(tmp_path / "s.csv", [Segment("good", 0, 3, ("/m/a",)), Segment("damaged", 0, 3, ("/m/a",))])
    LabelSet.from_mids(["/m/a"]).write(tmp_path / "labels.csv")
    args = ["prep", "--segments", str(tmp_path / "s.csv"), "--audio", str(audio), "--labels", str(tmp_path / "labels.csv")]
    assert main(args + ["--out", str(tmp_path / "header.json")]) == 0
    assert len(read_datafile(tmp_path / "header.json")) == 2
    assert main(args + ["--out", str(tmp_path / "verified.json"), "--verify"]) == 0
    assert [Path(c.wav).name for c in read_datafile(tmp_path / "verified.json")] == ["good.flac"]
    with open(tmp_path / "verified_unreadable.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert row["YTID"] == "damaged" and "flac decoder lost sync" in row["problem"]


def test_prep_keeps_a_segment_listed_twice_once_and_says_so(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    sf.write(tmp_path / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
    write_segments(tmp_path / "one.csv", [Segment("a", 0, 1, ("/m/a",))])
    write_segments(tmp_path / "two.csv", [Segment("a", 0, 1, ("/m/a",))])
    LabelSet.from_mids(["/m/a"]).write(tmp_path / "labels.csv")
    assert main(["prep", "--segments", str(tmp_path / "one.csv"), str(tmp_path / "two.csv"), "--audio", str(tmp_path),
                 "--labels", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "d.json")]) == 0
    assert len(read_datafile(tmp_path / "d.json")) == 1
    assert "1 duplicate dropped (first: a at 0 s)" in caplog.text


def test_class_list_built_from_the_labels_used():
    audioset = labels_for(["/m/0bt9lr", "/m/09x0r", "/m/05tny_"])  # Dog, Speech, Bark
    assert audioset.mids == ("/m/09x0r", "/m/0bt9lr", "/m/05tny_")  # AudioSet's order
    assert audioset.names == ("Speech", "Dog", "Bark")
    own = labels_for(["dog", "car_horn", "/m/09x0r"])
    assert own.mids == ("/m/09x0r", "car_horn", "dog") and own.names == ("Speech", "car_horn", "dog")


def test_link_builds_a_missing_class_list_and_warns_about_unused_classes(recordings, tmp_path, caplog):
    folder, _ = recordings
    source = tmp_path / "source"
    shutil.copytree(folder, source)
    assert main(["link", str(source), str(tmp_path / "a"), "--segments", "recordings.csv"]) == 0
    built = LabelSet.read(tmp_path / "a" / "class_labels_indices.csv")
    used = {m for s in read_segments(source / "recordings.csv") for m in s.labels}
    assert set(built.mids) == used and built.names == tuple(CLASS_NAMES[m] for m in built.mids)

    audioset_labels().write(source / "class_labels_indices.csv")  # AudioSet's full list, 10 of its classes used
    assert main(["link", str(source), str(tmp_path / "b"), "--segments", "recordings.csv"]) == 0
    assert (tmp_path / "b" / "class_labels_indices.csv").resolve() == source / "class_labels_indices.csv"
    assert "517 of the 527 classes" in caplog.text and "atdr tag scores them" in caplog.text and "mAP skips them" in caplog.text

    LabelSet.from_mids(sorted(used)[1:]).write(source / "class_labels_indices.csv")
    assert main(["link", str(source), str(tmp_path / "c"), "--segments", "recordings.csv"]) == 2
