"""The training Dataset, augmentations and the epoch sampler."""

import logging

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from atdr.data.audio import load_audio
from atdr.data.augment import mix_waveforms, spec_augment
from atdr.data.datafile import Clip, read_datafile
from atdr.config import AugmentConfig
from atdr.data.dataset import AudioDataset, collate
from atdr.data.features import get_frontend, pad_or_crop
from atdr.data.labels import LabelSet
from atdr.data.sampler import EpochSampler

MEAN, STD = -5.0, 4.0


@pytest.fixture(scope="module")
def data(tiny_synth):
    labels = LabelSet.read(tiny_synth / "class_labels_indices.csv")
    return read_datafile(tiny_synth / "train.json", labels), labels


def make(data, **augment):
    clips, labels = data
    return AudioDataset(clips, labels, get_frontend("kaldi128"), 100, (MEAN, STD), AugmentConfig(**augment))


def test_eval_item_is_normalised_features_and_multi_hot_target(data):
    ds = make(data, mixup=1.0, freqm=20, timem=20)  # augmentation must not apply without a seed
    features, target = ds[3]
    clip = ds.clips[3]
    ref = (pad_or_crop(get_frontend("kaldi128")(load_audio(clip.wav)), 100) - MEAN) / (2 * STD)
    torch.testing.assert_close(features, ref)
    assert features.shape == (100, 128)
    assert target.dtype == torch.float32 and target.sum() == len(clip.labels)
    assert all(target[ds.labels.index[m]] == 1 for m in clip.labels)


def test_training_item_is_a_pure_function_of_its_seed(data):
    ds = make(data, mixup=0.5, freqm=24, timem=30, noise=True)
    a, b = ds[(5, 1234)], ds[(5, 1234)]
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    c = ds[(5, 999)]
    assert not torch.equal(a[0], c[0])
    # The global torch RNG (dropout etc. in the training process) is left untouched.
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    ds[(5, 1234)]
    assert torch.equal(torch.rand(3), expected)


def test_mixup_mixes_waveforms_and_labels(data):
    ds = make(data, mixup=1.0)
    mixed = [ds[(i, 100 + i)][1] for i in range(20)]
    for target in mixed:
        # Two clips with weights lam and 1 - lam: per-clip label mass is lam + (1 - lam) = 1 ...
        assert 1.0 <= target.sum() <= 3.0
    # ... and with Beta(10, 10) most targets have fractional entries.
    assert sum(bool(((t > 0) & (t < 1)).any()) for t in mixed) >= 15


def test_mix_waveforms_formula():
    a, b = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.0, 2.0])
    lam = 0.3
    a0 = a - a.mean()
    b0 = torch.cat([b - b.mean(), torch.zeros(2)])  # partner: mean removed, then zero-padded
    expected = lam * a0 + (1 - lam) * b0  # its mean is removed by the front-end, as the original removes it
    torch.testing.assert_close(mix_waveforms(a, b, lam), expected)
    assert mix_waveforms(torch.ones(3), torch.arange(10.0), 0.5).shape == (3,)


def test_spec_augment_masks_bands_of_bounded_width():
    x = torch.ones(200, 64)
    widths_f, widths_t = [], []
    for seed in range(30):
        y = spec_augment(x, 16, 40, seed)
        widths_f.append(int((y == 0).all(dim=0).sum()))
        widths_t.append(int((y == 0).all(dim=1).sum()))
        torch.testing.assert_close(y, spec_augment(x, 16, 40, seed))
    assert max(widths_f) < 16 and max(widths_t) < 40
    assert sum(w > 0 for w in widths_f) > 20 and sum(w > 0 for w in widths_t) > 20
    assert spec_augment(x, 0, 0, 1) is x


def test_unreadable_clip_is_logged_once_and_skipped(data, tmp_path, caplog):
    clips, labels = data
    (tmp_path / "broken.wav").write_bytes(b"garbage")
    ds = AudioDataset([Clip(str(tmp_path / "broken.wav"), clips[0].labels)] + clips[:3], labels,
                      get_frontend("kaldi128"), 100, (MEAN, STD), skip_unreadable=True)
    with caplog.at_level(logging.WARNING):
        batch = collate([ds[0], ds[1], ds[0], ds[2]])
    assert batch[0].shape == (2, 100, 128)
    assert len(caplog.records) == 1 and "broken.wav" in caplog.records[0].getMessage()
    assert collate([None]) is None


def test_sampler_plan_is_deterministic_and_changes_per_epoch():
    s = EpochSampler(10, seed=3)
    s.set_epoch(1)
    first = list(s)
    assert list(s) == first and sorted(i for i, _ in first) == list(range(10))
    s.set_epoch(2)
    assert list(s) != first


def test_weighted_sampler_follows_the_weights():
    weights = np.array([0.0, 1.0, 3.0, 0.0])
    s = EpochSampler(4, weights=weights, seed=0)
    counts = np.zeros(4)
    for epoch in range(500):
        s.set_epoch(epoch)
        for i, _ in s:
            counts[i] += 1
    assert counts[0] == counts[3] == 0
    assert counts[2] / counts[1] == pytest.approx(3.0, rel=0.1)


def test_ranks_split_one_plan_and_resume_skips_consumed_items():
    full = EpochSampler(11, seed=1)
    full.set_epoch(4)
    plan = list(full)
    shards = [EpochSampler(11, seed=1, rank=r, world_size=2) for r in range(2)]
    for s in shards:
        s.set_epoch(4)
    assert len(shards[0]) == len(shards[1]) == 6
    merged = [item for pair in zip(*[list(s) for s in shards]) for item in pair]
    assert merged[:11] == plan and merged[11] == plan[0]  # padded by wrapping around
    full.set_epoch(4, start=7)
    assert list(full) == plan[7:] and len(full) == 4


def test_batches_do_not_depend_on_the_number_of_workers(data):
    ds = make(data, mixup=0.5, freqm=10, timem=10)
    sampler = EpochSampler(len(ds), seed=0)
    sampler.set_epoch(1)
    batches = []
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=8, sampler=sampler, num_workers=workers, collate_fn=collate)
        batches.append([b for b, _ in zip(loader, range(3))])
    for (x0, y0), (x2, y2) in zip(*batches):
        torch.testing.assert_close(x0, x2)
        torch.testing.assert_close(y0, y2)
