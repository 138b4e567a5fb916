"""Sample weights (the original gen_weight_file formula) and normalisation stats (vs numpy)."""

import numpy as np
import pytest

from atdr.data.datafile import Clip, read_datafile
from atdr.data.dataset import AudioDataset
from atdr.data.features import get_frontend, pad_or_crop
from atdr.data.labels import LabelSet
from atdr.data.audio import load_audio
from atdr.data.stats import NormStats, compute_norm_stats
from atdr.data.weights import read_weights, sample_weights, write_weights
from atdr.errors import AtdrError


def test_weights_match_a_hand_computed_example(tmp_path):
    labels = LabelSet.from_mids(["/m/a", "/m/b", "/m/c"])
    clips = [Clip("1.wav", ("/m/a",)), Clip("2.wav", ("/m/a", "/m/b")), Clip("3.wav", ("/m/a",))]
    # counts: a=3, b=1, c=0 -> label weights 1000/3.01, 1000/1.01
    w = sample_weights(clips, labels)
    np.testing.assert_allclose(w, [1000 / 3.01, 1000 / 3.01 + 1000 / 1.01, 1000 / 3.01])
    write_weights(tmp_path / "w.csv", w)
    np.testing.assert_array_equal(read_weights(tmp_path / "w.csv", n_clips=3), w)
    assert len((tmp_path / "w.csv").read_text().splitlines()) == 3


def test_weight_file_length_must_match(tmp_path):
    write_weights(tmp_path / "w.csv", np.ones(4))
    with pytest.raises(AtdrError, match="4 weights for 5 clips"):
        read_weights(tmp_path / "w.csv", n_clips=5)
    (tmp_path / "bad.csv").write_text("1\nnan\n")
    with pytest.raises(AtdrError, match="finite"):
        read_weights(tmp_path / "bad.csv")


@pytest.mark.parametrize("frontend, target_length", [("kaldi128", 90), ("mel64", 40)])
def test_norm_stats_match_numpy(tiny_synth, frontend, target_length):
    clips = read_datafile(tiny_synth / "eval.json")[:10]
    labels = LabelSet.read(tiny_synth / "class_labels_indices.csv")
    fe = get_frontend(frontend)
    stats = compute_norm_stats(AudioDataset(clips, labels, fe, target_length, norm=None), progress=False)
    every = np.stack([pad_or_crop(fe(load_audio(c.wav)), target_length).numpy() for c in clips]).astype(np.float64)
    assert stats.mean == pytest.approx(every.mean(), rel=1e-9)
    assert stats.std == pytest.approx(every.std(), rel=1e-9)
    assert (stats.frontend, stats.target_length, stats.clips) == (frontend, target_length, 10)


def test_norm_stats_file_round_trip_and_errors(tmp_path):
    stats = NormStats(-4.2, 4.5, "kaldi128", 1024, 7)
    stats.write(tmp_path / "s.json")
    assert NormStats.read(tmp_path / "s.json") == stats
    (tmp_path / "bad.json").write_text('{"mean": 1}')
    with pytest.raises(AtdrError, match="not a norm-stats file"):
        NormStats.read(tmp_path / "bad.json")
    NormStats(0.0, 0.0, "kaldi128", 1024, 1).write(tmp_path / "zero.json")
    with pytest.raises(AtdrError, match="std > 0"):
        NormStats.read(tmp_path / "zero.json")


def test_norm_stats_as_the_original_average_batches_of_augmented_features(tiny_synth, tmp_path):
    """src/get_norm_stats.py by hand: per batch (in datafile order) the mean and unbiased std of
    every value of the augmented training features, averaged over batches."""
    from atdr.cli import main
    from atdr.config import AugmentConfig
    from atdr.data.stats import compute_norm_stats_original

    clips = read_datafile(tiny_synth / "train.json")[:10]
    labels = LabelSet.read(tiny_synth / "class_labels_indices.csv")
    fe = get_frontend("kaldi128")
    dataset = AudioDataset(clips, labels, fe, 90, norm=None, augment=AugmentConfig(mixup=0.5, freqm=24, timem=30))
    stats = compute_norm_stats_original(dataset, batch_size=4, seed=3, progress=False)
    batches = [np.stack([dataset[(i, 3 * 10 + i)][0].numpy() for i in range(start, min(start + 4, 10))])
               for start in (0, 4, 8)]  # clip i augmented with seed `seed * clips + i`
    assert stats.mean == pytest.approx(np.mean([b.astype(np.float64).mean() for b in batches]), rel=1e-9)
    assert stats.std == pytest.approx(np.mean([b.astype(np.float64).std(ddof=1) for b in batches]), rel=1e-9)
    assert (stats.method, stats.settings) == ("original", dict(mixup=0.5, mixup_alpha=10.0, freqm=24, timem=30,
                                                               batch_size=4, seed=3))
    exact = compute_norm_stats(AudioDataset(clips, labels, fe, 90, norm=None), progress=False)
    assert exact.method == "exact" and abs(stats.mean - exact.mean) > 0.05  # masks zero parts of the features

    out = tmp_path / "stats.json"
    args = ["-q", "norm-stats", str(tiny_synth / "train.json"), "--target-length", "90", "--out", str(out)]
    assert main([*args, "--method", "original", "--batch-size", "4", "--freqm", "24", "--timem", "30"]) == 0
    written = NormStats.read(out)
    assert written.settings == dict(mixup=0.5, mixup_alpha=10.0, freqm=24, timem=30, batch_size=4, seed=0)
    assert main([*args, "--mixup", "0.3"]) == 2  # augmentation settings only with --method original


def test_norm_stats_workers_say_each_conversion_note_once(tmp_path):
    """Clips at 44.1 kHz in stereo, read by two data workers: the command says each conversion
    once, not once per worker."""
    import json
    import subprocess
    import sys

    import soundfile as sf

    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):  # 3 batches of 16: both workers read clips
        sf.write(tmp_path / f"{i}.wav", rng.uniform(-0.5, 0.5, (8820, 2)), 44100)
        rows.append({"wav": str(tmp_path / f"{i}.wav"), "labels": "/m/09x0r"})
    (tmp_path / "data.json").write_text(json.dumps({"data": rows}))
    proc = subprocess.run([sys.executable, "-m", "atdr", "norm-stats", str(tmp_path / "data.json"), "--workers", "2",
                           "--target-length", "20", "--out", str(tmp_path / "stats.json")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("note: downmixing 2-channel clips to mono") == 1, proc.stderr
    assert proc.stderr.count("note: resampling clips from 44100 Hz to 16000 Hz") == 1, proc.stderr
    assert NormStats.read(tmp_path / "stats.json").clips == 40
