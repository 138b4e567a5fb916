"""`atdr split`: a stable split (a clip's subset is a hash of its id, start and seed), every label
with a readable clip in train, shares per label as binomial as a stable split allows, and only
readable clips counted."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from atdr.cli import main
from atdr.data.segments import Segment, read_segments, write_segments
from atdr.data.split import SUBSETS, position, split_segments
from atdr.errors import AtdrError

SHARES = {"train": 0.7, "valid": 0.1, "eval": 0.2}


def labelled(counts: dict[str, int], seed: int = 0, prefix: str = "clip") -> list[Segment]:
    """Segments with random label sets: label `m` on about counts[m] clips (at least one label each)."""
    rng = np.random.default_rng(seed)
    n = max(counts.values()) * 2
    labels = [set() for _ in range(n)]
    for mid, count in counts.items():
        for i in rng.choice(n, count, replace=False):
            labels[i].add(mid)
    return [Segment(f"{prefix}{i:04d}", 0.0, 1.0, tuple(sorted(ls or {"/m/common"}))) for i, ls in enumerate(labels)]


def subset_of(subsets: dict[str, list[Segment]]) -> dict[tuple[str, float], str]:
    return {(s.ytid, s.start): name for name, part in subsets.items() for s in part}


def moved(before: dict[str, list[Segment]], after: dict[str, list[Segment]]) -> list[tuple[str, float]]:
    """The clips in both splits whose subset differs."""
    a, b = subset_of(before), subset_of(after)
    return sorted(k for k in a.keys() & b.keys() if a[k] != b[k])


def test_adding_or_removing_clips_moves_no_other_clip():
    """The reporter's edit: 38 rows, then clips added and others removed (main moved 9 of 38)."""
    rows = labelled({"/m/a": 16, "/m/b": 12, "/m/c": 8, "/m/d": 6}, seed=1)[:38]
    before = split_segments(rows, 0.1, 0.2, seed=0)
    added = rows + labelled({"/m/a": 5, "/m/b": 5, "/m/d": 2}, seed=2, prefix="new")
    assert moved(before, split_segments(added, 0.1, 0.2, seed=0)) == []
    removed = [s for i, s in enumerate(rows) if i % 5]
    assert moved(before, split_segments(removed, 0.1, 0.2, seed=0)) == []
    assert moved(before, split_segments(rows[::-1], 0.1, 0.2, seed=0)) == []  # nor does the list's order


def test_audioset_sized_edits_move_nothing(audioset_fixtures):
    """22,160 clips of 527 labels, 2,000 clips added, 2,000 others removed."""
    balanced = read_segments(audioset_fixtures / "balanced_train_segments.csv")
    extra = read_segments(audioset_fixtures / "eval_segments.csv")[:2000]
    before = split_segments(balanced, 0.1, 0.2, seed=0)
    after = split_segments(balanced[2000:] + extra, 0.1, 0.2, seed=0)
    assert len(subset_of(before).keys() & subset_of(after).keys()) == len(balanced) - 2000
    assert moved(before, after) == []


def test_each_labels_share_is_binomial_on_audioset_labels(audioset_fixtures):
    """Tolerance: within 4 standard deviations of a binomial count (n * share +- 4 sqrt(n share
    (1 - share))) for each of 527 labels in each subset, and 0.8 of one on average (a normal's
    mean |z|): no label skewed more than chance makes it. Overall shares within half a point."""
    segments = read_segments(audioset_fixtures / "balanced_train_segments.csv")
    subsets = split_segments(segments, SHARES["valid"], SHARES["eval"], seed=0)
    total = Counter(m for s in segments for m in s.labels)
    assert len(total) == 527
    for name, share in SHARES.items():
        assert len(subsets[name]) / len(segments) == pytest.approx(share, abs=0.005)
        held = Counter(m for s in subsets[name] for m in s.labels)
        z = np.array([(held[m] - share * n) / np.sqrt(n * share * (1 - share)) for m, n in total.items()])
        assert np.abs(z).max() <= 4, (name, total.most_common()[np.abs(z).argmax()])
        assert np.abs(z).mean() <= 0.9, name


def test_every_label_with_a_readable_clip_has_one_in_train():
    counts = {"/m/a": 300, "/m/b": 150, "/m/c": 20} | {f"/m/rare{k}": 1 + k % 3 for k in range(30)}
    segments = labelled(counts)
    subsets = split_segments(segments, 0.1, 0.2, seed=0)
    assert sorted(s.ytid for part in subsets.values() for s in part) == sorted(s.ytid for s in segments)  # a partition
    assert all(subsets[k] == [s for s in segments if s in subsets[k]] for k in subsets)  # the list's order kept
    assert {m for s in subsets["train"] for m in s.labels} == set(counts) | {"/m/common"}
    # Some rare labels' clips all hashed outside train: each lent its clip of lowest position.
    lent = [s for s in subsets["train"] if position(s, 0) >= 0.7]
    assert lent and all(any(sum(m in t.labels for t in segments) <= 3 for m in s.labels) for s in lent)

    # Counting only readable clips: q's clip of lowest position is unreadable, its other one goes to train.
    q = sorted((Segment(f"q{i}", 0, 1, ("/m/q",)) for i in range(40)), key=lambda s: position(s, 0))
    q = [s for s in q if position(s, 0) >= 0.7][:2]
    readable = set(segments) | {q[1]}
    subsets = split_segments(segments + q, 0.1, 0.2, seed=0, readable=readable)
    assert q[1] in subsets["train"] and q[0] not in subsets["train"]


def test_a_lent_clip_is_the_only_one_an_edit_can_move():
    """A label's only clip hashed into eval is lent to train; a clip of the label with a lower
    position takes its place, and it goes back to eval. Nothing else moves."""
    segments = labelled({"/m/a": 40, "/m/b": 30}, seed=3)
    q = sorted((Segment(f"q{i}", 0, 1, ("/m/q",)) for i in range(40)), key=lambda s: position(s, 0))
    in_eval = [s for s in q if position(s, 0) >= 0.8]
    before = split_segments(segments + in_eval[-1:], 0.1, 0.2, seed=0)
    assert in_eval[-1] in before["train"]
    after = split_segments(segments + in_eval[-1:] + in_eval[:1], 0.1, 0.2, seed=0)
    assert in_eval[0] in after["train"] and in_eval[-1] in after["eval"]
    assert moved(before, after) == [(in_eval[-1].ytid, 0.0)]


def test_the_split_is_the_same_for_a_seed_and_differs_between_seeds():
    segments = labelled({"/m/a": 100, "/m/b": 40})
    subsets = split_segments(segments, 0.1, 0.2, seed=0)
    assert split_segments(segments, 0.1, 0.2, seed=0) == subsets
    assert split_segments(segments, 0.1, 0.2, seed=1) != subsets
    assert position(segments[0], 0) == position(Segment("clip0000", 0, 99, ("/m/other",)), 0)  # id and start only


def test_split_without_validation_bad_shares_and_too_few_clips():
    segments = labelled({"/m/a": 30, "/m/b": 10})
    subsets = split_segments(segments, 0.0, 0.25)
    assert subsets["valid"] == [] and len(subsets["eval"]) == pytest.approx(0.25 * len(segments), abs=6)
    with pytest.raises(AtdrError, match="valid \\+ eval < 1"):
        split_segments(segments, 0.5, 0.5)
    with pytest.raises(AtdrError, match="clip0000 at 0 s is listed twice"):
        split_segments(segments + segments[:1], 0.1, 0.2)
    few = [s for s in segments if not 0.7 <= position(s, 0) < 0.8][:6]  # none in valid by position
    subsets = split_segments(segments, 0.1, 0.2, readable=set(few))
    assert [len(set(part) & set(few)) for part in subsets.values()] == [4, 1, 1]  # the nearest spared clip moved
    with pytest.raises(AtdrError, match="^2 readable clips are too few to split into train, valid and eval$"):
        split_segments(segments, 0.1, 0.2, readable=set(few[:2]))


def write_clips(folder: Path, names: list[str]) -> None:
    """Short readable wavs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        sf.write(folder / f"{name}.wav", rng.uniform(-0.5, 0.5, 1600).astype(np.float32), 16000)


def test_split_command_counts_only_readable_clips(tmp_path, caplog):
    segments = labelled({"/m/a": 50, "/m/b": 20})
    write_clips(tmp_path / "audio", [s.ytid for s in segments])
    # /m/q: its clip of lowest position is corrupt, another is absent, the last readable.
    q = sorted((Segment(f"q{i}", 0, 1, ("/m/q",)) for i in range(40)), key=lambda s: position(s, 0))
    q = [s for s in q if position(s, 0) >= 0.7][:3]
    (tmp_path / "audio" / f"{q[0].ytid}.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE not audio")
    write_clips(tmp_path / "audio", [q[2].ytid])
    write_segments(tmp_path / "all.csv", segments + q)
    args = ["split", str(tmp_path / "all.csv"), "--audio", str(tmp_path / "audio"), "--out", str(tmp_path / "out")]
    with caplog.at_level(logging.INFO):
        assert main(args) == 0
    parts = {name: read_segments(tmp_path / "out" / f"{name}_segments.csv") for name in SUBSETS}
    assert sum(map(len, parts.values())) == len(segments) + 3 and len(parts["eval"]) > len(parts["valid"]) > 0
    assert [s.ytid for s in parts["train"] if "/m/q" in s.labels] == [q[2].ytid]
    assert f"{len(segments) + 1} of {len(segments) + 3} listed segments have a readable clip; 1 missing; 1 unreadable" \
        in caplog.text


def test_split_command_refuses_a_label_without_a_readable_clip(tmp_path, capsys):
    segments = labelled({"/m/a": 50, "/m/b": 20})
    write_clips(tmp_path / "audio", [s.ytid for s in segments])
    (tmp_path / "audio" / "z1.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE not audio")
    write_segments(tmp_path / "all.csv", segments + [Segment("z1", 0, 1, ("/m/z",)), Segment("z2", 0, 1, ("/m/z",))])
    assert main(["split", str(tmp_path / "all.csv"), "--audio", str(tmp_path / "audio"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("atdr split: error: label '/m/z' (2 listed) has no readable clip "
                                               "(e.g. z2: no file)"), err
    assert not (tmp_path / "train_segments.csv").exists()


def test_split_command_names_labels_left_without_an_eval_clip(tmp_path, caplog):
    segments = labelled({"/m/a": 50, "/m/b": 20}) + [Segment("once", 0, 1, ("/m/once",))]
    write_clips(tmp_path / "audio", [s.ytid for s in segments])
    write_segments(tmp_path / "all.csv", segments)
    assert main(["split", str(tmp_path / "all.csv"), "--audio", str(tmp_path / "audio"), "--out", str(tmp_path)]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["warning: label '/m/once' (1 in train) has no eval clip: learnt but not scored (mAP skips it)"]


def test_positions_are_uniform():
    """The hash spreads ids evenly: shares come out right on sequential names."""
    names = [Segment(f"dog_{i:04d}", 0, 1, ("dog",)) for i in range(10000)]
    positions = np.array([position(s, 0) for s in names])
    assert np.histogram(positions, bins=10, range=(0, 1))[0] == pytest.approx([1000] * 10, abs=120)
