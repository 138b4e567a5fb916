"""Training augmentations of the original recipes: waveform mixup, SpecAugment, noise and roll.

Each is written once, for a batch (`[B, ...]`, on any device); the per-clip reference dataset
calls the same code with a batch of one. Every function draws its randomness on the CPU from the
generator it is given, so the result is the same on the CPU and on a GPU, and a pure function of
the generator's seed (see `atdr.data.sampler`): independent of worker count, repeatable after a
resume.
"""

from __future__ import annotations

import numpy as np
import torch

from atdr.data.features import centre


def mix(waves: torch.Tensor, partners: torch.Tensor, lam: torch.Tensor, lengths: torch.Tensor | None = None,
        partner_lengths: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Mix each clip with its partner as the original loader: `lam·first + (1-lam)·second`, each
    with its mean removed first, the partner zero-padded or cropped to the clip's length. The
    original then removes the mix's mean before its features; here the front-end does
    (`FrontEnd.batch`, with the same operation on the same values), so it is not done twice.

    `waves [B, S]`, `partners [B, S']` (float) with their `lengths` (default: full rows), `lam [B]`.
    Returns `[B, S]`, zero after each clip's length, written into `out` when given (which may be
    `waves`: mixed in place).
    """
    count, width = waves.shape
    lengths = torch.full((count,), width) if lengths is None else torch.as_tensor(lengths).cpu()
    first, second = centre(waves, lengths, out=out), centre(partners, partner_lengths)  # changed in place below
    if second.shape[1] != width:
        second = torch.nn.functional.pad(second[:, :width], (0, max(0, width - second.shape[1])))
    if bool((lengths < width).any()):
        second.masked_fill_((torch.arange(width) >= lengths[:, None]).to(second.device), 0.0)
    lam = lam.to(waves)[:, None]
    return first.mul_(lam).add_(second.mul_(1.0 - lam))


def mix_waveforms(first: torch.Tensor, second: torch.Tensor, lam: float, out: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """One clip mixed with one partner (see `mix`), into `out` when given (`first`: in place)."""
    return mix(first[None], second[None], torch.tensor([lam]), out=None if out is None else out[None])[0]


def mask_bands(features: torch.Tensor, freqm: int, timem: int, generator: torch.Generator,
               value: float = 0.0) -> torch.Tensor:
    """SpecAugment on `[B, time, freq]`: per example one frequency band (width uniform below
    `freqm`) and one time band (width uniform below `timem`) set to `value`, in a new tensor.

    torchaudio's `FrequencyMasking` then `TimeMasking` (`mask_along_axis_iid`), drawing the same
    numbers in the same order: for a batch of one, `torch.manual_seed(s)` with torchaudio and a
    generator seeded with `s` here give the same masks.
    """
    return mask_bands_(features.clone(), freqm, timem, generator, value)


def mask_bands_(features: torch.Tensor, freqm: int, timem: int, generator: torch.Generator,
                value: float = 0.0) -> torch.Tensor:
    """`mask_bands` in place: only the bands are written."""
    if freqm <= 0 and timem <= 0:
        return features
    count = features.shape[0]
    bands = {}
    for axis, bound in ((2, freqm), (1, timem)):
        if bound <= 0:
            bands[axis] = [(0, 0)] * count
            continue
        width = torch.rand(count, generator=generator) * bound
        start = torch.rand(count, generator=generator) * (features.shape[axis] - width)
        bands[axis] = list(zip(start.long().tolist(), (start.long() + width.long()).tolist()))
    for row, (f0, f1), (t0, t1) in zip(features, bands[2], bands[1]):
        row[:, f0:f1] = value
        row[t0:t1] = value
    return features


def spec_augment(features: torch.Tensor, freqm: int, timem: int, seed: int) -> torch.Tensor:
    """`mask_bands` on one clip's `[time, freq]` features, seeded with `seed`."""
    if freqm <= 0 and timem <= 0:
        return features
    return mask_bands(features[None], freqm, timem, torch.Generator().manual_seed(seed))[0]


def add_noise_and_roll(features: torch.Tensor, generator: torch.Generator, max_shift: int = 10) -> torch.Tensor:
    """Speech Commands' augmentation on `[B, time, freq]`: add U(0,1)·U(0,1)/10 noise (one
    scale per example), then roll each example in time by an integer in [-max_shift, max_shift)."""
    count, frames = features.shape[:2]
    noise = torch.rand(features.shape, generator=generator) * torch.rand(count, 1, 1, generator=generator) / 10
    shift = torch.randint(-max_shift, max_shift, (count, 1), generator=generator)
    source = (torch.arange(frames) - shift) % frames  # torch.roll: out[t] = in[t - shift]
    noisy = features + noise.to(features.device)
    return noisy.gather(1, source.to(features.device)[..., None].expand_as(noisy))


def noise_and_roll(features: torch.Tensor, rng: np.random.Generator, max_shift: int = 10) -> torch.Tensor:
    """`add_noise_and_roll` on one clip's `[time, freq]` features, seeded from `rng`."""
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    return add_noise_and_roll(features[None], generator, max_shift)[0]
