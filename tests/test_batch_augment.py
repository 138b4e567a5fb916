"""Augmentation of a batch (mixup inside the batch, SpecAugment, noise) and the BatchPipeline."""

import numpy as np
import pytest
import torch
import torchaudio

from atdr.config import AugmentConfig
from atdr.data.audio import as_float
from atdr.data.augment import add_noise_and_roll, mask_bands, mix, mix_waveforms, spec_augment
from atdr.data.features import get_frontend
from atdr.data.pipeline import BatchPipeline, WaveBatch, collate_waves


def test_mask_bands_draws_what_torchaudio_draws():
    x = torch.randn(6, 120, 64)
    for seed in range(25):
        torch.manual_seed(seed)
        spec = x.transpose(1, 2).unsqueeze(1)  # torchaudio's [B, channel, freq, time]
        ref = torchaudio.functional.mask_along_axis_iid(spec, 24, 0.0, 2)
        ref = torchaudio.functional.mask_along_axis_iid(ref, 40, 0.0, 3)[:, 0].transpose(1, 2)
        assert torch.equal(mask_bands(x, 24, 40, torch.Generator().manual_seed(seed)), ref)


def test_per_clip_spec_augment_is_the_original_torchaudio_masking():
    """The reference dataset's masks are unchanged: FrequencyMasking then TimeMasking under the seed."""
    x = torch.randn(200, 128)
    for seed in (0, 1, 2**40 + 7):
        torch.manual_seed(seed)
        spec = torchaudio.transforms.FrequencyMasking(48)(x.T[None])
        ref = torchaudio.transforms.TimeMasking(192)(spec)[0].T
        assert torch.equal(spec_augment(x, 48, 192, seed), ref)


def test_masks_are_per_example_bands_below_their_bounds():
    x = torch.ones(64, 300, 128)
    y = mask_bands(x, 48, 100, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    freq_widths = (y == 0).all(dim=1).sum(dim=1)  # masked frequency bins per example
    time_widths = (y == 0).all(dim=2).sum(dim=1)
    assert freq_widths.max() < 48 and time_widths.max() < 100
    assert len(set(freq_widths.tolist())) > 10 and len(set(time_widths.tolist())) > 10  # independent draws
    for row in y:  # each band is contiguous
        bins = (row == 0).all(dim=0).nonzero()[:, 0]
        assert len(bins) == 0 or bins[-1] - bins[0] + 1 == len(bins)
    assert torch.equal(mask_bands(x, 0, 0, torch.Generator()), x)


def test_batched_mix_is_the_per_clip_mix_for_each_row():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([1000, 600, 1000, 10])
    waves = torch.randn(4, 1000, generator=g) + 0.3
    partner = torch.tensor([1, 0, 3, 2])
    lam = torch.tensor([0.2, 0.5, 0.7, 0.9])
    mixed = mix(waves, waves[partner], lam, lengths, lengths[partner])
    for i in range(4):
        n, m = lengths[i], lengths[partner[i]]
        ref = mix_waveforms(waves[i, :n], waves[partner[i], :m], float(lam[i]))
        torch.testing.assert_close(mixed[i, :n], ref)
        assert torch.all(mixed[i, n:] == 0)


def one_hot_batch(count: int, samples: int = 4000, seed: int = 0) -> WaveBatch:
    """Clips of different lengths, each of its own class."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(samples // 2, samples + 1, (count,), generator=g)
    waves = torch.zeros(count, samples)
    for row, n in zip(waves, lengths):
        row[:n] = 0.1 * torch.randn(int(n), generator=g)
    return WaveBatch(waves, lengths, torch.eye(count), torch.arange(count))


def test_mixup_mixes_labels_with_the_weights_of_the_waveforms():
    batch = one_hot_batch(16)
    pipeline = BatchPipeline(get_frontend("kaldi128"), 30, None, AugmentConfig(mixup=1.0, mixup_alpha=10.0, mixup_partner="batch"))
    waves, targets = pipeline._mixup(batch.waves, batch.lengths, batch.targets, torch.Generator().manual_seed(1))
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(16))  # lam + (1 - lam)
    partners = []
    for i, row in enumerate(targets):
        lam = float(row[i])
        others = [j for j in row.nonzero()[:, 0].tolist() if j != i]
        assert len(others) <= 1
        j = others[0] if others else i  # mixed with itself: unchanged
        partners.append(j)
        assert 0 < lam <= 1 and (j == i or abs(float(row[j]) - (1 - lam)) < 1e-6)
        n, m = int(batch.lengths[i]), int(batch.lengths[j])
        ref = mix_waveforms(batch.waves[i, :n], batch.waves[j, :m], lam)
        torch.testing.assert_close(waves[i, :n], ref, atol=1e-6, rtol=1e-5)
    assert sorted(partners) == list(range(16))  # the partners are a permutation of the batch


def test_mixup_rate_and_lambda_distribution():
    batch = one_hot_batch(32, samples=800)
    pipeline = BatchPipeline(get_frontend("kaldi128"), 3, None, AugmentConfig(mixup=0.3, mixup_alpha=10.0, mixup_partner="batch"))
    mixed, lams = 0, []
    for seed in range(60):
        _, targets = pipeline._mixup(batch.waves, batch.lengths, batch.targets, torch.Generator().manual_seed(seed))
        diagonal = targets.diagonal()
        changed = (targets != batch.targets).any(dim=1)
        mixed += int(changed.sum())
        lams += diagonal[changed].tolist()
    assert 0.25 < mixed / (60 * 32) < 0.35  # about 1/B of the chosen ones mix with themselves
    # Beta(10, 10): mean 1/2, std sqrt(1 / (4 (2·10 + 1))) = 0.109
    assert abs(np.mean(lams) - 0.5) < 0.02 and abs(np.std(lams) - 0.109) < 0.015


def test_noise_and_roll_rolls_each_example_by_its_own_shift():
    x = torch.arange(4 * 50 * 3, dtype=torch.float32).reshape(4, 50, 3)
    y = add_noise_and_roll(x, torch.Generator().manual_seed(0))
    shifts = set()
    for xi, yi in zip(x, y):
        found = [s for s in range(-10, 10) if ((yi - torch.roll(xi, s, 0)) >= 0).all()
                 and ((yi - torch.roll(xi, s, 0)) < 0.1).all()]
        assert len(found) == 1
        shifts.add(found[0])
    assert len(shifts) > 1


def test_training_batch_is_a_pure_function_of_the_generator():
    batch = one_hot_batch(8, samples=16000)
    pipeline = BatchPipeline(get_frontend("mel64"), 40, (-20.0, 30.0),
                             AugmentConfig(mixup=0.5, mixup_partner="batch", freqm=12, timem=10, noise=True))
    a = pipeline.train(batch.waves, batch.lengths, batch.targets, batch.generator())
    b = pipeline.train(batch.waves, batch.lengths, batch.targets, batch.generator())
    c = pipeline.train(batch.waves, batch.lengths, batch.targets, torch.Generator().manual_seed(99))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])
    assert a[0].shape == (8, 40, 64) and a[1].shape == (8, 8)
    # The global RNG (dropout in the training process) is left alone.
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    pipeline.train(batch.waves, batch.lengths, batch.targets, batch.generator())
    assert torch.equal(torch.rand(3), expected)


def test_eval_is_normalised_features_of_int16_or_float_waves():
    pcm = torch.randint(-3000, 3000, (3, 8000), dtype=torch.int16)
    lengths = torch.tensor([8000, 5000, 401])
    pipeline = BatchPipeline(get_frontend("kaldi128"), 60, (-5.0, 4.0))
    features = pipeline.eval(pcm, lengths)
    fe = get_frontend("kaldi128")
    for row, wave, n in zip(features, pcm, lengths):
        raw = fe(wave[:n].float() / 32768)
        torch.testing.assert_close(row[:len(raw)], (raw[:60] - -5.0) / 8.0)
        assert torch.all(row[len(raw):] == (0 - -5.0) / 8.0)  # padding frames, normalised like the original
    torch.testing.assert_close(pipeline.eval(pcm.float() / 32768, lengths), features, rtol=0, atol=0)


def test_collate_pads_and_drops_unreadable_items():
    items = [(torch.ones(5, dtype=torch.int16), torch.tensor([1.0, 0.0]), 11, None), None,
             (torch.full((3,), 2, dtype=torch.int16), torch.tensor([0.0, 1.0]), 12, None)]
    batch = collate_waves(items)
    assert batch.waves.tolist() == [[1, 1, 1, 1, 1], [2, 2, 2, 0, 0]] and batch.lengths.tolist() == [5, 3]
    assert batch.seeds.tolist() == [11, 12] and batch.generator().initial_seed() == 11
    assert collate_waves([None]) is None


def test_collate_mixes_items_with_the_partners_their_workers_read_as_the_per_clip_mix():
    g = torch.Generator().manual_seed(4)
    pcm = [(3000 * torch.randn(n, generator=g) + 400).short() for n in (900, 1200, 600, 700)]
    target = torch.tensor([1.0, 0.0])
    items = [(pcm[0], target, 1, (pcm[1], 0.3)),  # a longer partner, cropped
             (pcm[3], target, 2, (pcm[2], 0.6)),  # a shorter one, zero-padded
             (pcm[2], target, 3, None)]  # not mixed
    batch = collate_waves(items)
    assert batch.waves.dtype == torch.float32 and batch.lengths.tolist() == [900, 700, 600]
    expected = [mix_waveforms(as_float(pcm[0]), as_float(pcm[1]), 0.3),
                mix_waveforms(as_float(pcm[3]), as_float(pcm[2]), 0.6), as_float(pcm[2])]
    for row, clip in zip(batch.waves, expected):
        assert torch.equal(row[:len(clip)], clip) and torch.all(row[len(clip):] == 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_training_batch_on_cuda_is_augmented_as_on_the_cpu():
    batch = one_hot_batch(8, samples=16000)
    pipeline = BatchPipeline(get_frontend("kaldi128"), 100, (-5.0, 4.0),
                             AugmentConfig(mixup=0.5, mixup_partner="batch", freqm=24, timem=20))
    cpu = pipeline.train(batch.waves, batch.lengths, batch.targets, batch.generator())
    gpu = pipeline.train(batch.waves.cuda(), batch.lengths, batch.targets.cuda(), batch.generator())
    torch.testing.assert_close(gpu[1].cpu(), cpu[1])
    assert torch.equal(gpu[0].cpu() == (0 - -5.0) / 8.0, cpu[0] == (0 - -5.0) / 8.0)  # the same masks
    assert (gpu[0].cpu() - cpu[0]).abs().mean() < 1e-3
