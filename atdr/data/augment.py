"""Training augmentations of the original recipes: waveform mixup, SpecAugment, noise and roll.

Every function draws its randomness from the generator it is given, so an item's augmentation
is a pure function of its seed (see `atdr.data.sampler`): independent of worker count, and
repeatable after a resume.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio


def mix_waveforms(first: torch.Tensor, second: torch.Tensor, lam: float) -> torch.Tensor:
    """`lam·first + (1-lam)·second` after removing each mean; `second` padded/cropped to `first`."""
    first = first - first.mean()
    second = second - second.mean()
    if second.shape[0] < first.shape[0]:
        second = torch.nn.functional.pad(second, (0, first.shape[0] - second.shape[0]))
    mixed = lam * first + (1.0 - lam) * second[: first.shape[0]]
    return mixed - mixed.mean()


def spec_augment(features: torch.Tensor, freqm: int, timem: int, seed: int) -> torch.Tensor:
    """One frequency mask (width < freqm) and one time mask (width < timem) on `[time, freq]`.

    torchaudio's `FrequencyMasking`/`TimeMasking`, run under a forked RNG seeded with `seed`.
    """
    if freqm <= 0 and timem <= 0:
        return features
    spec = features.T.unsqueeze(0)  # [1, freq, time], the layout torchaudio expects
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if freqm > 0:
            spec = torchaudio.transforms.FrequencyMasking(freqm)(spec)
        if timem > 0:
            spec = torchaudio.transforms.TimeMasking(timem)(spec)
    return spec[0].T


def noise_and_roll(features: torch.Tensor, rng: np.random.Generator, max_shift: int = 10) -> torch.Tensor:
    """Speech Commands' augmentation: add U(0,1)·U(0,1)/10 noise, roll by up to ±max_shift frames."""
    noise = torch.from_numpy(rng.random(features.shape, dtype=np.float32)) * float(rng.random()) / 10
    return torch.roll(features + noise, int(rng.integers(-max_shift, max_shift)), dims=0)
