"""Mixup on the packed path as the original's: each training clip is mixed, with probability
`mixup`, with a partner drawn uniformly from the whole training set (also under balanced
sampling: the original's `--bal bal` draws partners uniformly), read from the store by the data
worker, with the reference loader's own draws; `augment.mixup_partner: batch` keeps the faster
in-batch partners."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy import stats
from test_batch_features import torchaudio_kaldi

from atdr.config import parse_config
from atdr.data.audio import load_audio
from atdr.data.datafile import Clip, write_datafile
from atdr.data.features import get_frontend
from atdr.data.labels import LabelSet
from atdr.data.loaders import run_loaders
from atdr.data.pack import PackedDataset, PackedStore, pack
from atdr.data.pipeline import collate_waves
from atdr.data.sampler import EpochSampler

CLIPS = 40
LABELS = LabelSet.from_mids([f"/m/{i}" for i in range(CLIPS)])
# Balanced sampling that never visits the second half of the clips: their only way into a batch
# is as the partner of another.
WEIGHTS = np.r_[np.ones(CLIPS // 2), np.zeros(CLIPS // 2)]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def one_class_each(tmp_path_factory):
    """A packed training set of short clips of different lengths, clip i of class i alone."""
    folder = tmp_path_factory.mktemp("partners")
    (folder / "audio").mkdir()
    (folder / "labels.csv").write_text("index,mid,display_name\n" + "".join(
        f"{i},{mid},{mid}\n" for i, mid in enumerate(LABELS.mids)))
    rng = np.random.default_rng(0)
    clips = []
    for i, mid in enumerate(LABELS.mids):
        path = folder / "audio" / f"c{i}.wav"
        sf.write(path, rng.integers(-4000, 4000, 1200 + 37 * i, dtype=np.int16), 16000, subtype="PCM_16")
        clips.append(Clip(str(path), (mid,)))
    write_datafile(folder / "train.json", clips)
    pack(folder / "train.json", folder / "train.pack", progress=False)
    return folder, clips


def loaders(folder, loader: str, **augment):
    cfg = parse_config({"model": {"name": "linear"}, "augment": augment,
                        "data": {"train": str(folder / "train.json"), "eval": str(folder / "train.json"),
                                 "labels": str(folder / "labels.csv"), "frontend": "kaldi128", "target_length": 20,
                                 "mean": -5.0, "std": 4.0, "loader": loader}})
    return run_loaders(cfg, LABELS, get_frontend("kaldi128"), (-5.0, 4.0), CPU)


def training_batches(folder, clips, path, epochs: int, workers: int = 0):
    """The model inputs of `epochs` epochs of balanced sampling, and each row's own clip."""
    sampler = EpochSampler(CLIPS, WEIGHTS, seed=3)
    loader = path.loader(folder / "train.json", clips, 4, sampler, num_workers=workers)
    owns, xs, ys = [], [], []
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch)
        owns.append(sampler.plan()[0])
        for batch in loader:
            x, y = path.train_inputs(batch.clips, CPU)
            xs.append(x)
            ys.append(y)
    return torch.cat(owns), torch.cat(xs), torch.cat(ys)


def partners(owns: torch.Tensor, targets: torch.Tensor) -> list[int | None]:
    """Each row's partner: the other class in its target (None: not mixed, or mixed with itself)."""
    found = []
    for own, row in zip(owns.tolist(), targets):
        others = [c for c in row.nonzero()[:, 0].tolist() if c != own]
        assert len(others) <= 1
        found.append(others[0] if others else None)
    return found


def test_packed_mixup_draws_partners_uniformly_from_the_whole_dataset(one_class_each):
    folder, clips = one_class_each
    owns, _, targets = training_batches(folder, clips, loaders(folder, "packed", mixup=0.5), epochs=30, workers=2)
    found = partners(owns, targets)
    mixed = [p for p in found if p is not None]
    # Mixed: the chosen half, but for the partners that are the clip itself (1/N, as the original)
    share, expected = len(mixed) / len(found), 0.5 * (1 - 1 / CLIPS)
    assert abs(share - expected) < 4 * math.sqrt(expected * (1 - expected) / len(found))
    # Uniform over the dataset, not over the balanced draw: the never-sampled half gives half the
    # partners (partners from the batch would all be sampled clips), each of them equally often.
    unsampled = [p for p in mixed if p >= CLIPS // 2]
    share = len(unsampled) / len(mixed)
    assert abs(share - (CLIPS // 2) / (CLIPS - 1)) < 4 * math.sqrt(0.25 / len(mixed))
    assert stats.chisquare(np.bincount(unsampled, minlength=CLIPS)[CLIPS // 2:]).pvalue > 1e-3
    # λ ~ Beta(10, 10): mean 1/2, std sqrt(1 / (4 (2·10 + 1))) = 0.109
    lam = torch.stack([row[own] for own, row, p in zip(owns.tolist(), targets, found) if p is not None])
    assert abs(lam.mean() - 0.5) < 0.02 and abs(lam.std() - 0.109) < 0.015


def test_packed_and_reference_training_items_are_mixed_alike(one_class_each):
    """The same item seeds give the same partners and λ on both paths, hence the same targets,
    and (without masks) the same features."""
    folder, clips = one_class_each
    packed = training_batches(folder, clips, loaders(folder, "packed", mixup=0.7), epochs=3)
    reference = training_batches(folder, clips, loaders(folder, "reference", mixup=0.7), epochs=3)
    assert torch.equal(packed[2], reference[2])
    assert sum(p is not None for p in partners(packed[0], packed[2])) > 30
    assert (packed[1] - reference[1]).abs().max() <= 1e-4


def test_a_mixed_item_has_the_original_loaders_features(one_class_each):
    """The original: both waveforms centred, the partner padded or cropped, λ·w1 + (1-λ)·w2, the
    mix centred, then torchaudio's Kaldi fbank."""
    folder, clips = one_class_each
    path = loaders(folder, "packed", mixup=1.0)
    dataset = PackedDataset(PackedStore(folder / "train.pack"), clips, LABELS, mixup=path.pipeline.augment)
    for index, seed in [(3, 11), (35, 10)]:  # partners 31 and 10: longer and shorter than the clip
        rng = np.random.default_rng(seed)
        rng.random()
        partner, lam = int(rng.integers(CLIPS)), float(rng.beta(10.0, 10.0))
        first, second = (load_audio(clips[i].wav) for i in (index, partner))
        first, second = first - first.mean(), second - second.mean()
        second = torch.nn.functional.pad(second[:len(first)], (0, max(len(first) - len(second), 0)))
        mixed = lam * first + (1 - lam) * second
        expected = (torchaudio_kaldi(mixed) - -5.0) / 8.0  # torchaudio_kaldi removes the mix's mean
        x, y = path.pipeline.train_inputs(collate_waves([dataset[(index, seed)]]), CPU)
        frames = len(expected)
        assert frames < 20 and (x[0, :frames] - expected).abs().max() <= 1e-4
        assert torch.all(x[0, frames:] == (0 - -5.0) / 8.0)  # padding frames, normalised
        assert y[0, index] == pytest.approx(lam) and y[0, partner] == pytest.approx(1 - lam)


def test_partners_from_the_batch_on_request(one_class_each):
    folder, clips = one_class_each
    owns, _, targets = training_batches(folder, clips, loaders(folder, "packed", mixup=0.5, mixup_partner="batch"),
                                        epochs=10)
    mixed = [p for p in partners(owns, targets) if p is not None]
    assert len(mixed) > 100 and max(mixed) < CLIPS // 2  # only clips the balanced draw visits
