"""The analyses: nested stratified subsets, injected label noise, waveform perturbations, probing,
and the tables and figures of `atdr analyze` and `atdr cost` on real (tiny) runs."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import write_run_config

from atdr.analysis.cost import pareto_front
from atdr.analysis.labels import read_label_quality
from atdr.cli import main
from atdr.data.datafile import Clip, read_datafile
from atdr.data.label_noise import inject_label_noise
from atdr.data.labels import LabelSet, audioset_labels
from atdr.data.perturb import Perturbation, parse_band
from atdr.data.split import nested_subsets
from atdr.data.weights import read_weights, sample_weights
from atdr.errors import AtdrError
from atdr.metrics import evaluate

SR = 16000
PNG = b"\x89PNG\r\n\x1a\n"


def label_sets(counts: dict[str, int], n: int, seed: int = 0) -> list[tuple[str, ...]]:
    """`n` items; label `mid` on `count` of them at random; items left without one get /m/common."""
    rng = np.random.default_rng(seed)
    sets = [set() for _ in range(n)]
    for mid, count in counts.items():
        for i in rng.choice(n, count, replace=False):
            sets[i].add(mid)
    return [tuple(sorted(s or {"/m/common"})) for s in sets]


# Nested, stratified subsets


def test_subsets_are_nested_stratified_and_keep_every_label():
    counts = {"/m/a": 400, "/m/b": 200, "/m/c": 80, "/m/d": 40, "/m/rare": 2}
    items = label_sets(counts, 800)
    fractions = [0.1, 0.25, 0.5]
    subsets = nested_subsets(items, fractions, seed=0)
    sets = [set(s.tolist()) for s in subsets]
    assert sets[0] < sets[1] < sets[2]  # nested
    for fraction, subset in zip(fractions, subsets):
        assert list(subset) == sorted(subset)  # the datafile's order kept
        assert len(subset) == pytest.approx(fraction * len(items), abs=0.01 * len(items))
        for mid, count in list(counts.items())[:4]:  # every label about its share
            held = sum(mid in items[i] for i in subset)
            assert abs(held - fraction * count) <= max(1.5, 0.05 * fraction * count), (mid, fraction, held)
        assert any("/m/rare" in items[i] for i in subset)  # even the smallest has every label
    again = nested_subsets(items, fractions, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, subsets))  # the same for every model and seed
    assert not np.array_equal(nested_subsets(items, fractions, seed=1)[0], subsets[0])


@pytest.mark.parametrize("fractions", [[0.5, 0.25], [0.25, 0.25], [0.0, 0.5], [0.5, 1.0], []])
def test_subset_fractions_must_be_ascending_shares(fractions):
    with pytest.raises(AtdrError, match="fractions must be distinct, ascending and between 0 and 1"):
        nested_subsets(label_sets({"/m/a": 10}, 20), fractions)


def test_subset_command_writes_nested_datafiles_and_their_weights(tiny_synth, tmp_path):
    labels_csv = tiny_synth / "class_labels_indices.csv"
    args = ["subset", str(tiny_synth / "train.json"), "--labels", str(labels_csv), "--fractions", "0.5", "0.25"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main(["-q", *args, "--out", str(tmp_path / "b")]) == 0
    labels = LabelSet.read(labels_csv)
    full = read_datafile(tiny_synth / "train.json", labels)
    quarter, half = (read_datafile(tmp_path / "a" / f / "train.json", labels) for f in ("0.25", "0.5"))
    assert abs(len(quarter) - 12) <= 3 and abs(len(half) - 24) <= 3  # about: stratification comes first
    assert {c.wav for c in quarter} < {c.wav for c in half} < {c.wav for c in full}
    assert {m for c in quarter for m in c.labels} == set(labels.mids)
    for f, subset in (("0.25", quarter), ("0.5", half)):
        np.testing.assert_allclose(read_weights(tmp_path / "a" / f / "train_weight.csv"), sample_weights(subset, labels))
        assert (tmp_path / "a" / f / "train.json").read_bytes() == (tmp_path / "b" / f / "train.json").read_bytes()
    counts = pd.read_csv(tmp_path / "a" / "subsets.csv")
    assert sorted(counts.fraction.unique()) == [0.25, 0.5, 1.0]
    whole = counts[counts.fraction == 1.0].set_index("mid").positives
    assert whole.to_dict() == {m: sum(m in c.labels for c in full) for m in labels.mids}


def test_subsets_and_noisy_labels_read_the_whole_splits_store(tiny_synth, tmp_path):
    from atdr.data.audio import load_audio
    from atdr.data.loaders import ensure_packed
    from atdr.data.pack import PackedDataset, PackedStore

    labels_csv = str(tiny_synth / "class_labels_indices.csv")
    labels = LabelSet.read(labels_csv)
    store = PackedStore(ensure_packed(tiny_synth / "train.json"))
    assert main(["-q", "subset", str(tiny_synth / "train.json"), "--labels", labels_csv, "--fractions", "0.25",
                 "--out", str(tmp_path)]) == 0
    assert main(["-q", "label-noise", str(tiny_synth / "train.json"), "--labels", labels_csv, "--rates", "0.5",
                 "--out", str(tmp_path)]) == 0
    full = read_datafile(tiny_synth / "train.json", labels)
    for variant in ("0.25", "0.5"):
        clips = read_datafile(tmp_path / variant / "train.json", labels)
        positions = store.locate(clips)
        assert [full[i].wav for i in positions] == [c.wav for c in clips]
        dataset = PackedDataset(store, clips, labels, positions=positions)
        for i in range(0, len(clips), 5):
            assert torch.equal(dataset.wave(i), load_audio(clips[i].wav))  # 16-bit files: bit-identical
            assert torch.equal(dataset[i][1], torch.from_numpy(labels.encode(clips[i].labels)))  # the variant's labels
    assert len(positions) == len(full) and (positions == np.arange(len(full))).all()  # relabelled: every clip
    assert not (matrix(clips, labels) == matrix(full, labels)).all()
    with pytest.raises(AtdrError, match="does not hold .*other.wav"):
        store.locate([*clips[:3], Clip(str(tmp_path / "other.wav"), ("/m/a",))])


# Label noise


def noisy_fixture(n: int = 400) -> tuple[list[Clip], LabelSet]:
    labels = LabelSet.from_mids([f"/m/{k}" for k in range(8)] + ["/m/common"])
    counts = {f"/m/{k}": int(n * 0.6 / (k + 1)) for k in range(8)}  # unequal, as AudioSet
    return [Clip(f"clip{i}.wav", ls) for i, ls in enumerate(label_sets(counts, n, seed=1))], labels


def matrix(clips: list[Clip], labels: LabelSet) -> np.ndarray:
    return np.stack([labels.encode(c.labels) for c in clips]).astype(bool)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_injected_label_noise_has_the_requested_rate(rate):
    clips, labels = noisy_fixture()
    clean = matrix(clips, labels)
    noisy = inject_label_noise(clips, labels, rate, seed=0)
    after = matrix(noisy.clips, labels)
    positives = int(clean.sum())
    dropped, flipped = int((clean & ~after).sum()), int((~clean & after).sum())
    assert dropped == flipped == round(rate * positives) == noisy.dropped == noisy.flipped  # counted
    assert noisy.positives == positives and after.sum() == positives
    assert (~clean & after).sum() / after.sum() == pytest.approx(rate, abs=1 / positives)  # share of labels wrong
    assert all(c.labels for c in noisy.clips)  # every clip keeps a label
    assert [c.wav for c in noisy.clips] == [c.wav for c in clips]
    np.testing.assert_array_equal(noisy.given, after.sum(axis=0))
    np.testing.assert_allclose(noisy.quality, (clean & after).sum(axis=0) / after.sum(axis=0))
    assert noisy.quality[7] < noisy.quality[0]  # wrong labels spread evenly: the rarest class suffers most


def test_label_noise_is_seeded_and_zero_rate_changes_nothing():
    clips, labels = noisy_fixture()
    first, again = (inject_label_noise(clips, labels, 0.2, seed=3).clips for _ in range(2))
    assert first == again and first != inject_label_noise(clips, labels, 0.2, seed=4).clips
    assert inject_label_noise(clips, labels, 0.0).clips == clips
    single = [Clip(f"c{i}.wav", ("/m/0",)) for i in range(10)]
    with pytest.raises(AtdrError, match="would leave clips without a label"):
        inject_label_noise(single, labels, 0.9)  # 9 flips cannot free 9 drops from 10 single-label clips


def test_label_noise_command_writes_noisy_sets_counts_and_quality(tiny_synth, tmp_path):
    assert main(["-q", "label-noise", str(tiny_synth / "train.json"), "--labels", str(tiny_synth / "class_labels_indices.csv"),
                 "--rates", "0.25", "--seed", "0", "--out", str(tmp_path)]) == 0
    labels = LabelSet.read(tiny_synth / "class_labels_indices.csv")
    clean = matrix(read_datafile(tiny_synth / "train.json", labels), labels)
    noisy_clips = read_datafile(tmp_path / "0.25" / "train.json", labels)
    noisy = matrix(noisy_clips, labels)
    counts = json.loads((tmp_path / "0.25" / "noise.json").read_text())
    assert counts == {"rate": 0.25, "seed": 0, "clips": 48, "positives": int(clean.sum()),
                      "dropped": int((clean & ~noisy).sum()), "flipped": int((~clean & noisy).sum())}
    assert counts["dropped"] == round(0.25 * clean.sum())
    quality = pd.read_csv(tmp_path / "0.25" / "label_quality.csv")
    np.testing.assert_allclose(quality.quality, (clean & noisy).sum(0) / noisy.sum(0))
    np.testing.assert_allclose(read_weights(tmp_path / "0.25" / "train_weight.csv"), sample_weights(noisy_clips, labels))


# Perturbations


def tones(*freqs: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(SR * seconds), dtype=torch.float64) / SR
    return (sum(torch.sin(2 * math.pi * f * t) for f in freqs) * 0.2).float()


def snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> float:
    return 10 * math.log10(float(clean.double().pow(2).mean() / (noisy - clean).double().pow(2).mean()))


def band_power(wave: torch.Tensor, low: float, high: float) -> float:
    spectrum = torch.fft.rfft(wave.double()).abs() ** 2
    freqs = torch.fft.rfftfreq(len(wave), 1 / SR)
    return float(spectrum[(freqs >= low) & (freqs <= high)].sum())


@pytest.mark.parametrize("snr", [20.0, 5.0, 0.0, -5.0])
def test_white_noise_has_the_requested_snr_measured_on_the_output(snr):
    x = tones(440, 1000)
    y = Perturbation("white_noise", snr)(x, 7)
    assert snr_db(x, y) == pytest.approx(snr, abs=1e-3)
    assert torch.equal(y, Perturbation("white_noise", snr)(x, 7)) and not torch.equal(y, Perturbation("white_noise", snr)(x, 8))
    noise = (y - x).double()
    assert abs(float(noise.mean())) < 0.05 * float(noise.std())  # zero-mean, white: flat spectrum
    assert band_power(noise, 100, 3000) / band_power(noise, 4000, 6900) == pytest.approx(1.0, rel=0.15)


class WaveSet(list):
    """Clips as waveforms, as `AudioDataset` and `PackedDataset` give them (`atdr.data.dataset.Waves`)."""

    def wave(self, index: int) -> torch.Tensor | None:
        return self[index]


def test_babble_mixes_other_clips_of_the_set_at_the_requested_snr():
    clips = WaveSet([tones(300, seconds=0.5), tones(700, seconds=0.5), tones(1300, seconds=0.5), None])
    x = tones(440)
    y = Perturbation("babble", 10.0)(x, 0, WaveSet(clips[:2]))  # a set of two: clip 0's babble is clip 1 alone
    assert snr_db(x, y) == pytest.approx(10.0, abs=1e-3)
    other = tones(700)  # clip 1, looped to the length
    assert float(torch.nn.functional.cosine_similarity((y - x).double(), other.double(), dim=0)) > 0.999
    y = Perturbation("babble", 0.0)(x, 1, clips)  # never the clip itself; an unreadable one left out
    assert snr_db(x, y) == pytest.approx(0.0, abs=1e-3)
    assert band_power(y - x, 690, 710) < 1e-6 * band_power(y - x, 0, 8000)
    assert band_power(y - x, 290, 310) > 0.3 * band_power(y - x, 0, 8000)
    assert band_power(y - x, 1290, 1310) > 0.3 * band_power(y - x, 0, 8000)
    with pytest.raises(AtdrError, match="babble needs a set of at least 2 clips"):
        Perturbation("babble", 0.0)(x, 0)


def test_band_limits_remove_exactly_the_frequencies_outside_by_spectrum():
    x = Perturbation("white_noise", 0.0)(tones(1000), 0)  # broadband
    low = Perturbation("lowpass", 1000.0)(x, 0)
    assert band_power(low, 1001, 8000) < 1e-9 * band_power(x, 1001, 8000)
    assert band_power(low, 0, 999) == pytest.approx(band_power(x, 0, 999), rel=1e-5)
    phone = Perturbation("bandpass", parse_band("300-3400"))(x, 0)
    assert band_power(phone, 0, 299) + band_power(phone, 3401, 8000) < 1e-9 * band_power(x, 0, 8000)
    assert band_power(phone, 300, 3400) == pytest.approx(band_power(x, 300, 3400), rel=1e-5)
    trip = Perturbation("resample", 4000)(x, 0)  # to 4 kHz and back: nothing left above 2 kHz
    assert len(trip) == len(x)
    assert band_power(trip, 2200, 8000) < 1e-3 * band_power(x, 2200, 8000)  # past the resampler's roll-off
    assert band_power(trip, 0, 1700) == pytest.approx(band_power(x, 0, 1700), rel=0.05)


def test_gain_shift_and_truncation_do_what_they_say():
    x = tones(440, 900)
    assert torch.allclose(Perturbation("gain", -20.0)(x, 0), x * 0.1)
    loud = Perturbation("gain", 20.0)(x, 0)
    assert loud.abs().max() == 1.0 and torch.equal(loud.sign(), x.sign())
    assert torch.allclose(loud, (x * 10).clamp(-1, 1))
    assert torch.equal(Perturbation("shift", 0.25)(x, 0), torch.roll(x, 4000))
    assert torch.equal(Perturbation("truncate", 0.5)(x, 0), x[:8000])
    labels = [Perturbation(k, s).label for k, s in [("white_noise", 10.0), ("bandpass", (300.0, 3400.0)),
                                                     ("truncate", 0.5), ("shift", 0.5), ("resample", 8000)]]
    assert labels == ["10 dB", "300-3400 Hz", "50%", "0.5 s", "8000 Hz"]


@pytest.mark.parametrize("kind, strength, message", [
    ("lowpass", -1.0, "lowpass: invalid strength"), ("truncate", 1.5, "truncate: invalid strength"),
    ("bandpass", (3400.0, 300.0), "bandpass: invalid strength"), ("bandpass", 300.0, "give a band"),
    ("echo", 1.0, "unknown perturbation 'echo'"),
])
def test_bad_perturbations_are_one_line_errors(kind, strength, message):
    with pytest.raises(AtdrError, match=message):
        Perturbation(kind, strength)
    with pytest.raises(AtdrError, match="expected a band LOW-HIGH"):
        parse_band("300")


# Probing a trained run


@pytest.fixture(scope="module")
def reference_run(tiny_synth, tmp_path_factory) -> Path:
    """A tiny linear run on the reference data path (features per clip in the workers)."""
    out = tmp_path_factory.mktemp("reference") / "linear"
    config = write_run_config(out.parent / "linear.yaml", tiny_synth, {"name": "linear", "params": {"hidden_dim": 16}},
                              frontend="mel64", target_length=40, data={"loader": "reference"}, train={"epochs": 1})
    assert main(["-q", "train", "--config", str(config), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("path", ["packed", "reference"])
def test_probe_on_clean_input_reproduces_the_runs_eval_map(path, trained_run, reference_run, tmp_path, caplog):
    run = trained_run if path == "packed" else reference_run
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["loader"] == path
    caplog.set_level(logging.INFO)
    out = tmp_path / "probe.csv"
    assert main(["probe", str(run), "--white-noise", "0", "--babble", "0", "--bandpass", "300-3400", "--truncate", "0.3",
                 "--out", str(out)]) == 0
    table = pd.read_csv(out, keep_default_na=False)
    summary = json.loads((run / "summary.json").read_text())
    own = evaluate(np.load(run / "predictions.npy"), np.load(run / "targets.npy")).mAP
    assert table.loc[0, "mAP"] == summary["best"]["mAP"] == own  # exactly
    assert "reproduces the run's eval mAP" in caplog.text
    assert list(table.perturbation) == ["clean", "white_noise", "babble", "bandpass", "truncate"]
    assert list(table.label) == ["clean", "0 dB", "0 dB", "300-3400 Hz", "30%"]
    assert (table.clips == 24).all() and (table.clips_per_s > 0).all()
    assert (table.mAUC[1:] != table.mAUC[0]).all()  # every perturbation changed the scores


# Tables and figures


def test_pareto_front_keeps_the_points_no_other_beats():
    cost = np.array([1.0, 2.0, 3.0, 4.0, 2.0])
    score = np.array([0.1, 0.3, 0.2, 0.5, 0.3])
    assert pareto_front(cost, score).tolist() == [True, True, False, True, True]  # equal points both stay


def test_label_quality_files_by_mid_or_as_audiosets_qa_counts(tmp_path):
    audioset = audioset_labels()
    labels = LabelSet(audioset.mids[:3], audioset.names[:3])
    (tmp_path / "mine.csv").write_text(f"mid,quality\n{labels.mids[0]},0.9\n{labels.mids[2]},0.4\n/m/other,1\n")
    np.testing.assert_allclose(read_label_quality(tmp_path / "mine.csv", labels), [0.9, np.nan, 0.4])
    (tmp_path / "qa_true_counts.csv").write_text("label_id,num_rated,num_true\n0,10,7\n1,0,0\n2,4,4\n100,5,1\n")
    np.testing.assert_allclose(read_label_quality(tmp_path / "qa_true_counts.csv", labels), [0.7, np.nan, 1.0])
    (tmp_path / "bad.csv").write_text("class,score\nx,1\n")
    with pytest.raises(AtdrError, match="expected a column mid or label_id"):
        read_label_quality(tmp_path / "bad.csv", labels)
    (tmp_path / "none.csv").write_text("mid,quality\n/m/other,1\n")
    with pytest.raises(AtdrError, match="rates none of the 3 classes"):
        read_label_quality(tmp_path / "none.csv", labels)


@pytest.fixture(scope="module")
def analysis_runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny linear runs laid out as the workflow does: on the whole set, on a half subset and on
    labels with 30% noise (results/synth/...), evaluated, and one probed."""
    from atdr.data.synth import synthesize

    root = tmp_path_factory.mktemp("analyses")
    data = root / "results" / "synth" / "data"
    synthesize(data, n_train=48, n_eval=24, seconds=1.0, progress=False)
    labels = str(data / "class_labels_indices.csv")
    analysis = root / "results" / "synth" / "analysis"
    assert main(["-q", "subset", str(data / "train.json"), "--labels", labels, "--fractions", "0.5",
                 "--out", str(analysis / "data_efficiency")]) == 0
    assert main(["-q", "label-noise", str(data / "train.json"), "--labels", labels, "--rates", "0.3",
                 "--out", str(analysis / "label_noise")]) == 0
    assert main(["-q", "norm-stats", str(data / "train.json"), "--frontend", "mel64", "--target-length", "40",
                 "--out", str(data / "stats.json")]) == 0
    runs = {"whole": root / "results" / "synth" / "linear" / "seed0",
            "half": analysis / "data_efficiency" / "0.5" / "linear" / "seed0",
            "noisy": analysis / "label_noise" / "0.3" / "linear" / "seed0"}
    trains = {"whole": data / "train.json", "half": analysis / "data_efficiency" / "0.5" / "train.json",
              "noisy": analysis / "label_noise" / "0.3" / "train.json"}
    for name, run in runs.items():
        store = {"train_store": str(data / "train.pack")} if name != "whole" else {}  # as the workflow: packed first
        config = {"model": {"name": "linear", "params": {"hidden_dim": 16}},
                  "data": {"train": str(trains[name]), "eval": str(data / "eval.json"), "labels": labels,
                           "frontend": "mel64", "target_length": 40, "norm_stats": str(data / "stats.json"), **store},
                  "optim": {"warmup_steps": 0},
                  "train": {"epochs": 2, "batch_size": 16, "num_workers": 0, "device": "cpu"}}
        (root / f"{name}.yaml").write_text(yaml.safe_dump(config))
        assert main(["-q", "train", "--config", str(root / f"{name}.yaml"), "--out", str(run)]) == 0
    assert main(["-q", "evaluate", str(runs["whole"]), "--bootstrap", "20"]) == 0
    assert main(["-q", "probe", str(runs["whole"]), "--gain", "-10", "--shift", "0.5", "--out",
                 str(analysis / "robustness" / "linear" / "seed0" / "probe.csv")]) == 0
    return {**runs, "analysis": analysis}


@pytest.mark.slow
def test_analyze_writes_every_table_and_figure(analysis_runs, tmp_path):
    runs, out = analysis_runs, tmp_path
    assert main(["-q", "analyze", "data-efficiency", str(runs["whole"]), str(runs["half"]), "--bootstrap", "20",
                 "--out", str(out)]) == 0
    table = pd.read_csv(out / "data_efficiency.csv")
    assert table.train_clips.tolist() == [24, 48] and table.fraction.tolist() == [0.5, 1.0]
    whole = json.loads((runs["whole"] / "eval" / "metrics.json").read_text())["best"]
    assert table[["mAP", "mAP_ci_low", "mAP_ci_high"]].iloc[1].tolist() == [whole["mAP"], *whole["mAP_ci95"]]  # as evaluated

    assert main(["-q", "analyze", "label-noise", str(runs["whole"]), str(runs["noisy"]), "--bootstrap", "20",
                 "--out", str(out)]) == 0
    noise = pd.read_csv(out / "label_noise.csv")
    assert noise.rate.tolist() == [0.0, 0.3] and noise.dropped.iloc[1] == noise.flipped.iloc[1] > 0

    labels = LabelSet.read(read_datafile_labels(runs["whole"]))
    (tmp_path / "quality.csv").write_text("mid,quality\n" + "".join(f"{m},{1 - k / 20}\n" for k, m in enumerate(labels.mids)))
    assert main(["-q", "analyze", "label-quality", str(runs["whole"]), str(runs["noisy"]),
                 "--quality", str(tmp_path / "quality.csv"), "--out", str(out)]) == 0
    rhos = pd.read_csv(out / "label_quality.csv")
    assert rhos[["model", "labels", "classes"]].values.tolist() == [["linear", "as given", 10], ["linear", "noise rate 0.3", 10]]
    assert rhos.spearman_rho.between(-1, 1).all()

    assert main(["-q", "analyze", "robustness", str(runs["analysis"] / "robustness" / "linear" / "seed0" / "probe.csv"),
                 "--out", str(out)]) == 0
    robust = pd.read_csv(out / "robustness.csv", keep_default_na=False)
    assert robust.perturbation.tolist() == ["clean", "gain", "shift"] and robust.relative_drop[0] == 0
    assert robust.score[0] == whole["mAP"]
    assert "gain -10 dB" in (out / "robustness.md").read_text()

    for png in ("data_efficiency.png", "mAP_vs_label_noise.png", "per_class_ap_vs_label_quality.png", "robustness.png"):
        assert (out / png).read_bytes()[:8] == PNG, png


def read_datafile_labels(run: Path) -> str:
    return yaml.safe_load((run / "config.yaml").read_text())["data"]["labels"]


@pytest.mark.slow
def test_cost_measures_speed_and_marks_the_pareto_front(analysis_runs, tmp_path):
    run = analysis_runs["whole"]
    benchmark = tmp_path / "train.tsv"
    benchmark.write_text("s\th:m:s\tmax_rss\tcpu_time\n10.0\t0:00:10\t100\t36.0\n")
    assert main(["-q", "cost", str(run), "--benchmarks", str(benchmark), "--clips", "8", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "cost.csv")
    summary = json.loads((run / "summary.json").read_text())
    row = table.iloc[0]
    assert (row.model, row.params, row.seeds, bool(row.pareto)) == ("linear", summary["params"], 1, True)
    assert row.train_cost_h == pytest.approx(36.0 / 3600)  # CPU-hours: the job's CPU time
    assert row.mAP_per_hour == pytest.approx(row.mAP / row.train_cost_h)
    assert row.train_clips_per_s == pytest.approx(summary["clips_per_s"]) and row.infer_clips_per_s > 0
    assert (tmp_path / "mAP_vs_cost.png").read_bytes()[:8] == PNG
    with pytest.raises(AtdrError, match="one benchmark per run"):
        from atdr.analysis.cost import cost_table

        cost_table([run], [benchmark, benchmark])
