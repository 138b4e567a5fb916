"""Waveform perturbations for robustness probing: what a trained model meets outside its data.

Each acts on a 16 kHz mono clip (1-D float tensor) as loaded by `load_audio`, before the
features, and keeps its length unless it says otherwise:

- `white_noise` (SNR dB): Gaussian noise at this signal-to-noise ratio over the clip.
- `babble` (SNR dB): the sum of `BABBLE_CLIPS` other clips of the same set (each at the same
  level, looped or cut to length) at this SNR: competing sounds of the kind the model knows.
- `gain` (dB): louder or quieter, clipped to [-1, 1] as a recording would be.
- `lowpass` (Hz): nothing above this frequency (an ideal filter, by FFT).
- `bandpass` (low-high Hz): nothing outside the band; 300-3400 Hz is the telephone band.
- `shift` (s): circular shift in time (what wraps around is the clip's own end).
- `truncate` (share kept): only the first part of the clip, which is then shorter (the
  front-end pads it, as any short clip).
- `resample` (Hz): down to this rate and back, with `load_audio`'s resampler.

`Perturbation(kind, strength)` applies one: called as `perturbation(wave, index, dataset)` (the
`wave_transform` of `AudioDataset` and `PackedDataset`), its randomness is a pure function of the
seed and the clip's index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio

from atdr.data.audio import SAMPLE_RATE
from atdr.data.dataset import Waves
from atdr.errors import AtdrError

BABBLE_CLIPS = 4  # other clips summed into babble
TELEPHONE_BAND = (300.0, 3400.0)


def power(wave: torch.Tensor) -> float:
    return float(wave.double().pow(2).mean())


def add_at_snr(wave: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """`wave` plus `noise` scaled so that their power ratio over the clip is `snr_db` dB (a silent
    clip or noise stays as it is)."""
    signal, noisy = power(wave), power(noise)
    if signal == 0 or noisy == 0:
        return wave.clone()
    return wave + noise * math.sqrt(signal / (noisy * 10 ** (snr_db / 10)))


def gain(wave: torch.Tensor, db: float) -> torch.Tensor:
    return (wave * 10 ** (db / 20)).clamp(-1.0, 1.0)


def band_limit(wave: torch.Tensor, low: float, high: float, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """`wave` without the frequencies outside [low, high] Hz (its FFT zeroed there)."""
    spectrum = torch.fft.rfft(wave.double())
    freqs = torch.fft.rfftfreq(len(wave), 1 / sample_rate, dtype=torch.float64)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return torch.fft.irfft(spectrum, len(wave)).to(wave.dtype)


def shift(wave: torch.Tensor, seconds: float, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    return torch.roll(wave, round(seconds * sample_rate))


def truncate(wave: torch.Tensor, keep: float) -> torch.Tensor:
    return wave[: max(1, round(keep * len(wave)))].clone()


def resample_round_trip(wave: torch.Tensor, rate: int, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """`wave` resampled to `rate` and back (the same length: cut, or zero-padded by a sample)."""
    back = torchaudio.functional.resample(torchaudio.functional.resample(wave, sample_rate, rate), rate, sample_rate)
    return torch.nn.functional.pad(back[: len(wave)], (0, max(0, len(wave) - len(back))))


def _fit(wave: torch.Tensor, length: int) -> torch.Tensor:
    """`wave` looped or cut to `length` samples."""
    return wave.repeat(math.ceil(length / len(wave)))[:length]


# Every kind: what its strength is, and its unit.
KINDS = {
    "white_noise": ("SNR", "dB"),
    "babble": ("SNR", "dB"),
    "gain": ("gain", "dB"),
    "lowpass": ("cut-off", "Hz"),
    "bandpass": ("band", "Hz"),
    "shift": ("shift", "s"),
    "truncate": ("share kept", "%"),
    "resample": ("rate", "Hz"),
}


@dataclass(frozen=True)
class Perturbation:
    """One perturbation at one strength (a number, or `(low, high)` for `bandpass`); `babble`
    mixes in other clips of the set the clip is in (never the clip itself)."""

    kind: str
    strength: float | tuple[float, float]
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise AtdrError(f"unknown perturbation {self.kind!r} (known: {', '.join(KINDS)})")
        band = isinstance(self.strength, tuple)
        if band != (self.kind == "bandpass"):
            raise AtdrError(f"{self.kind}: " + ("give a band low-high in Hz" if self.kind == "bandpass" else "give a number"))
        low, high = self.strength if band else (0.0, self.strength)
        if (self.kind in ("lowpass", "bandpass") and not 0 <= low < high) or \
                (self.kind in ("lowpass", "resample") and not 0 < high) or \
                (self.kind == "truncate" and not 0 < high <= 1):
            raise AtdrError(f"{self.kind}: invalid strength {self.label}")

    @property
    def value(self) -> str:
        """The strength as given, e.g. "10", "300-3400", "0.5"."""
        s = self.strength
        return f"{s[0]:g}-{s[1]:g}" if self.kind == "bandpass" else f"{s:g}"

    @property
    def label(self) -> str:
        """The strength with its unit, as tables and figures show it: "10 dB", "300-3400 Hz", "50%"."""
        return f"{self.strength * 100:g}%" if self.kind == "truncate" else f"{self.value} {KINDS[self.kind][1]}"

    def __call__(self, wave: torch.Tensor, index: int, dataset: Waves | None = None) -> torch.Tensor:
        """Clip `index` of `dataset` (its set: needed by babble only), perturbed."""
        s = self.strength
        if self.kind == "white_noise":
            rng = np.random.default_rng([self.seed, index])
            return add_at_snr(wave, torch.from_numpy(rng.standard_normal(len(wave)).astype(np.float32)), s)
        if self.kind == "babble":
            return add_at_snr(wave, self._babble(dataset, index, len(wave)), s)
        if self.kind == "gain":
            return gain(wave, s)
        if self.kind in ("lowpass", "bandpass"):
            return band_limit(wave, *(s if self.kind == "bandpass" else (0.0, s)))
        if self.kind == "shift":
            return shift(wave, s)
        if self.kind == "truncate":
            return truncate(wave, s)
        return resample_round_trip(wave, int(s))

    def _babble(self, dataset: Waves | None, index: int, length: int) -> torch.Tensor:
        """`BABBLE_CLIPS` other clips of `dataset` at equal power, summed (unreadable or silent
        ones left out)."""
        if dataset is None or len(dataset) < 2:
            raise AtdrError("babble needs a set of at least 2 clips to mix")
        rng = np.random.default_rng([self.seed, index])
        chosen = rng.choice(len(dataset) - 1, min(BABBLE_CLIPS, len(dataset) - 1), replace=False)
        babble = torch.zeros(length)
        for j in chosen + (chosen >= index):  # any clip but `index`
            other = dataset.wave(int(j))
            other = None if other is None else _fit(other, length)
            if other is not None and power(other) > 0:
                babble += other / math.sqrt(power(other))
        return babble


def parse_band(text: str) -> tuple[float, float]:
    """"300-3400" -> (300.0, 3400.0)."""
    try:
        low, high = (float(x) for x in text.split("-"))
    except ValueError:
        raise AtdrError(f"expected a band LOW-HIGH in Hz such as 300-3400, got {text!r}") from None
    return low, high
