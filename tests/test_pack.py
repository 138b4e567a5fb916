"""`atdr pack` and the packed reader: round trip, checksums, resume, and the same features as the
per-clip reference dataset."""

import csv
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from atdr.cli import main
from atdr.data import pack as packing
from atdr.data.audio import load_audio
from atdr.data.datafile import Clip, read_datafile, write_datafile
from atdr.data.dataset import AudioDataset
from atdr.data.features import get_frontend
from atdr.data.labels import LabelSet
from atdr.data.loaders import ensure_packed
from atdr.data.pack import PackedDataset, PackedStore, pack
from atdr.data.pipeline import BatchPipeline, collate_waves
from atdr.errors import AtdrError

LABELS = LabelSet.from_mids(["/m/a", "/m/b", "/m/c"])


@pytest.fixture
def int16_clips(tmp_path):
    """A datafile of 16-bit clips with known samples (lengths differ; one at full scale)."""
    rng = np.random.default_rng(0)
    samples = [rng.integers(-32768, 32768, n, dtype=np.int16) for n in (16000, 7001, 400, 24000, 3)]
    samples[0][:2] = [-32768, 32767]
    (tmp_path / "audio").mkdir()
    clips = []
    for i, pcm in enumerate(samples):
        sf.write(tmp_path / "audio" / f"c{i}.wav", pcm, 16000, subtype="PCM_16")
        clips.append(Clip(str(tmp_path / "audio" / f"c{i}.wav"), (LABELS.mids[i % 3],)))
    write_datafile(tmp_path / "train.json", clips)
    return tmp_path / "train.json", samples


@pytest.mark.parametrize("codec", ["pcm16", "flac"])
def test_round_trip_is_bit_exact_and_matches_load_audio(int16_clips, tmp_path, codec):
    datafile, samples = int16_clips
    summary = pack(datafile, tmp_path / "train.pack", codec, progress=False)
    assert (summary.clips, summary.failed, summary.resumed) == (5, 0, 0)
    store = PackedStore(tmp_path / "train.pack")
    assert len(store) == 5 and store.codec == codec and store.wavs[1] == "audio/c1.wav"
    for i, pcm in enumerate(samples):
        stored = store.read(i)
        assert stored.dtype == np.int16 and np.array_equal(stored, pcm)
        clip = read_datafile(datafile)[i]
        assert torch.equal(torch.from_numpy(stored).float() / 32768, load_audio(clip.wav))
    assert store.verify(progress=False) == 5
    # pcm16: a header page, the samples, then the index
    if codec == "pcm16":
        assert summary.bytes > 4096 + 2 * sum(len(p) for p in samples)


def test_a_store_is_read_the_same_after_copying_and_pickling(int16_clips, tmp_path):
    datafile, samples = int16_clips
    pack(datafile, tmp_path / "train.pack", progress=False)
    (tmp_path / "scratch").mkdir()
    copy = tmp_path / "scratch" / "train.pack"
    copy.write_bytes((tmp_path / "train.pack").read_bytes())  # node-local scratch: one file
    store = PackedStore(copy)
    store.read(0)
    clone = pickle.loads(pickle.dumps(store))  # as DataLoader workers receive it: without the mapping
    assert clone._map is None and np.array_equal(clone.read(3), samples[3])


def test_corrupt_clip_is_detected_by_its_checksum(int16_clips, tmp_path):
    datafile, _ = int16_clips
    pack(datafile, tmp_path / "train.pack", progress=False)
    store = PackedStore(tmp_path / "train.pack")
    offset = int(store.table["offset"][1])
    data = bytearray((tmp_path / "train.pack").read_bytes())
    data[offset + 100] ^= 0x01  # one flipped bit
    (tmp_path / "train.pack").write_bytes(bytes(data))
    store = PackedStore(tmp_path / "train.pack")
    store.read(0)  # other clips stay readable
    with pytest.raises(AtdrError, match=r"clip 1 \(audio/c1.wav\) fails its checksum"):
        store.read(1)
    with pytest.raises(AtdrError, match="fails its checksum"):
        store.verify(progress=False)


def test_truncated_or_damaged_store_is_refused_with_one_line(int16_clips, tmp_path, capsys):
    datafile, _ = int16_clips
    path = tmp_path / "train.pack"
    pack(datafile, path, progress=False)
    whole = path.read_bytes()
    path.write_bytes(whole[:-10])
    with pytest.raises(AtdrError, match="truncated or damaged store"):
        PackedStore(path)
    assert main(["pack", "--verify", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "truncated" in err and len(err.splitlines()) == 1
    damaged = bytearray(whole)
    damaged[-5] ^= 0xFF  # inside the metadata
    path.write_bytes(bytes(damaged))
    with pytest.raises(AtdrError, match="index fails its checksum"):
        PackedStore(path)
    path.write_bytes(b"RIFF" + whole[4:])
    with pytest.raises(AtdrError, match="not a packed store"):
        PackedStore(path)


def test_interrupted_pack_resumes_and_gives_the_same_store(int16_clips, tmp_path, monkeypatch):
    datafile, _ = int16_clips
    pack(datafile, tmp_path / "fresh.pack", progress=False)
    out = tmp_path / "train.pack"
    decode, calls = packing._decode, []

    def interrupted(task):
        calls.append(task)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return decode(task)

    monkeypatch.setattr(packing, "_decode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pack(datafile, out, progress=False)
    monkeypatch.setattr(packing, "_decode", decode)
    assert not out.exists()  # never a half-written store under the final name
    partial, journal = tmp_path / ".train.pack.partial", tmp_path / ".train.pack.journal"
    assert len(journal.read_text().splitlines()) == 1 + 3
    # A kill in the middle of the next clip: some of its bytes, half a journal line.
    with open(partial, "ab") as f:
        f.write(b"\x01" * 999)
    with open(journal, "a") as f:
        f.write('[14002, 7001, 12')
    summary = pack(datafile, out, progress=False)
    assert summary.resumed == 3 and summary.clips == 5
    assert out.read_bytes() == (tmp_path / "fresh.pack").read_bytes()
    assert not partial.exists() and not journal.exists()


def interrupt_pack_at(monkeypatch, clip: str, datafile, out, *args) -> None:
    """`pack(datafile, out, *args)` stopped by Ctrl-C when it reaches `clip` (a file name)."""
    decode = packing._decode
    monkeypatch.setattr(packing, "_decode", lambda task: (_ for _ in ()).throw(KeyboardInterrupt)
                        if task[0].endswith(clip) else decode(task))
    with pytest.raises(KeyboardInterrupt):
        pack(datafile, out, *args, progress=False)
    monkeypatch.setattr(packing, "_decode", decode)


def test_a_torn_clip_at_the_end_of_an_interrupted_pack_is_packed_again(int16_clips, tmp_path, monkeypatch):
    datafile, _ = int16_clips
    pack(datafile, tmp_path / "fresh.pack", progress=False)
    interrupt_pack_at(monkeypatch, "c3.wav", datafile, tmp_path / "train.pack")
    partial = tmp_path / ".train.pack.partial"
    data = bytearray(partial.read_bytes())
    data[-10] ^= 0xFF  # the last recorded clip (c2) did not reach the disk intact
    partial.write_bytes(bytes(data))
    summary = pack(datafile, tmp_path / "train.pack", progress=False)
    assert summary.resumed == 2
    assert (tmp_path / "train.pack").read_bytes() == (tmp_path / "fresh.pack").read_bytes()


def test_a_partial_store_of_another_job_is_not_resumed(int16_clips, tmp_path, monkeypatch):
    datafile, _ = int16_clips
    interrupt_pack_at(monkeypatch, "c2.wav", datafile, tmp_path / "train.pack", "flac")
    summary = pack(datafile, tmp_path / "train.pack", "pcm16", progress=False)  # another codec: start over
    assert summary.resumed == 0 and PackedStore(tmp_path / "train.pack").codec == "pcm16"


def test_an_interrupted_pack_starts_over_when_a_clip_changed_meanwhile(int16_clips, tmp_path, monkeypatch):
    datafile, _ = int16_clips
    interrupt_pack_at(monkeypatch, "c3.wav", datafile, tmp_path / "train.pack")
    new = np.arange(-3500, 3501, dtype=np.int16)  # c1, already packed, rewritten
    sf.write(tmp_path / "audio" / "c1.wav", new, 16000, subtype="PCM_16")
    summary = pack(datafile, tmp_path / "train.pack", progress=False)
    assert summary.resumed == 0 and np.array_equal(PackedStore(tmp_path / "train.pack").read(1), new)


def test_ensure_packed_keeps_a_current_store_and_packs_again_an_outdated_one(int16_clips, tmp_path, caplog):
    datafile, samples = int16_clips
    store = ensure_packed(datafile)
    packed = store.stat().st_ino
    assert ensure_packed(datafile) == store and store.stat().st_ino == packed  # current: kept
    new, changed = samples[1][::-1].copy(), tmp_path / "audio" / "c1.wav"  # same size and name, other samples
    sf.write(changed, new, 16000, subtype="PCM_16")
    assert PackedStore(store).outdated(read_datafile(datafile)) == f"{changed} changed since it was packed"
    ensure_packed(datafile)
    assert f"packing {datafile} into {store} again: {changed} changed since it was packed" in caplog.text
    assert np.array_equal(PackedStore(store).read(1), new)
    relabelled = read_datafile(datafile)
    relabelled[2] = Clip(relabelled[2].wav, ("/m/a", "/m/b"))
    write_datafile(datafile, relabelled)
    ensure_packed(datafile)  # the datafile's clips or labels changed: packed again, not refused
    PackedDataset(PackedStore(store), relabelled, LABELS)


def test_a_store_copied_without_its_audio_is_used_as_it_is(int16_clips, tmp_path):
    datafile, _ = int16_clips
    store = ensure_packed(datafile)
    packed = store.stat().st_ino
    (tmp_path / "audio").rename(tmp_path / "elsewhere")  # as on node-local scratch: the datafile and its store
    assert PackedStore(store).outdated(read_datafile(datafile, check_files=False)) is None
    assert ensure_packed(datafile) == store and store.stat().st_ino == packed


def test_undecodable_clips_are_reported_and_skipped(int16_clips, tmp_path, caplog):
    datafile, samples = int16_clips
    (tmp_path / "audio" / "broken.wav").write_bytes(b"not audio at all")
    clips = read_datafile(datafile) + [Clip(str(tmp_path / "audio" / "broken.wav"), ("/m/a",)),
                                       Clip(str(tmp_path / "audio" / "gone.wav"), ("/m/b",))]
    write_datafile(datafile, clips)
    summary = pack(datafile, tmp_path / "train.pack", progress=False)
    assert (summary.clips, summary.failed) == (7, 2)
    with open(tmp_path / "train_undecodable.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["wav"] for r in rows] == ["audio/broken.wav", "audio/gone.wav"]
    assert "cannot read audio" in rows[0]["error"]
    store = PackedStore(tmp_path / "train.pack")
    assert store.read(5) is None and store.read(6) is None
    dataset = PackedDataset(store, read_datafile(datafile, check_files=False), LABELS)
    batch = collate_waves([dataset[4], dataset[5], dataset[(0, 7)]])
    assert batch.waves.shape == (2, 16000) and batch.lengths.tolist() == [3, 16000]
    assert batch.seeds.tolist() == [0, 7] and batch.waves.dtype == torch.int16
    assert np.array_equal(batch.waves[1].numpy(), samples[0]) and batch.waves[0, 3:].eq(0).all()
    strict = PackedDataset(store, read_datafile(datafile, check_files=False), LABELS, skip_unreadable=False)
    with pytest.raises(AtdrError, match="could not be decoded when .* was packed"):
        strict[5]


def test_a_store_of_another_datafile_is_refused(int16_clips, tmp_path):
    datafile, _ = int16_clips
    pack(datafile, tmp_path / "train.pack", progress=False)
    store = PackedStore(tmp_path / "train.pack")
    clips = read_datafile(datafile)
    with pytest.raises(AtdrError, match="packed from another datafile"):
        PackedDataset(store, clips[:4], LABELS)
    relabelled = clips[:2] + [Clip(clips[2].wav, ("/m/c", "/m/a"))] + clips[3:]
    with pytest.raises(AtdrError, match="clip 2 is audio/c2.wav"):
        PackedDataset(store, relabelled, LABELS)


@pytest.mark.parametrize("frontend, target_length", [("kaldi128", 120), ("mel64", 40)])
def test_packed_path_gives_the_reference_datasets_features(tiny_synth, tmp_path, frontend, target_length):
    labels = LabelSet.read(tiny_synth / "class_labels_indices.csv")
    clips = read_datafile(tiny_synth / "train.json", labels)
    pack(tiny_synth / "train.json", tmp_path / "train.pack", progress=False)
    norm = (-5.0, 4.0)
    reference = AudioDataset(clips, labels, get_frontend(frontend), target_length, norm)
    packed = PackedDataset(PackedStore(tmp_path / "train.pack"), clips, labels)
    pipeline = BatchPipeline(get_frontend(frontend), target_length, norm)
    loader = DataLoader(packed, batch_size=8, num_workers=2, collate_fn=collate_waves)  # a mapping per worker
    seen = 0
    for batch in loader:
        features = pipeline.eval(batch.waves, batch.lengths)
        for row, target in zip(features, batch.targets):
            ref_features, ref_target = reference[seen]
            assert torch.equal(target, ref_target)
            assert (row - ref_features).abs().max() <= 1e-4
            seen += 1
    assert seen == len(clips)


def test_pack_command(tiny_synth, tmp_path, caplog):
    datafile = tmp_path / "data" / "train.json"
    datafile.parent.mkdir()
    write_datafile(datafile, read_datafile(tiny_synth / "train.json"))
    assert main(["pack", str(datafile), "--codec", "flac", "--workers", "2"]) == 0
    store = PackedStore(tmp_path / "data" / "train.pack")
    assert len(store) == 48 and store.codec == "flac"
    assert (tmp_path / "data" / "train_undecodable.csv").read_text().splitlines() == ["wav,error"]
    assert main(["pack", "--verify", str(tmp_path / "data" / "train.pack")]) == 0
    assert store.labels[0] == ",".join(read_datafile(datafile)[0].labels)
    assert main(["pack", str(tmp_path / "missing.json")]) == 2
