"""Feature front-ends: `[samples] -> [time, freq]` log-mel features, as the original recipes.

- `kaldi<N>` (default `kaldi128`): Kaldi-compatible fbank (torchaudio.compliance.kaldi), 25 ms
  Hanning window, 10 ms shift, N mel bins: 998 frames for 10 s, padded to 1024 by the recipes.
- `mel<N>` (the paper's "small feature", `mel64`): `MelSpectrogram(n_fft=4096, win_length=1024,
  hop_length=400, slaney)` then dB: 401 frames for 10 s, cropped to 400 by the recipes.
  Faithful quirk: the original builds `AmplitudeToDB(spec)`, which passes the spectrogram as
  `stype`, so its power spectrogram gets the *amplitude* multiplier (20·log10). Kept here so the
  paper's norm stats and checkpoints stay valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import torch
import torchaudio

from atdr.data.audio import SAMPLE_RATE
from atdr.errors import AtdrError

_NAME = re.compile(r"^(kaldi|mel)(\d+)$")


@dataclass(frozen=True)
class FrontEnd:
    """A named feature extractor; `name` is `kaldi<N>` or `mel<N>` with N mel bins."""

    name: str

    @property
    def kind(self) -> str:
        return _NAME.match(self.name).group(1)

    @property
    def n_mels(self) -> int:
        return int(_NAME.match(self.name).group(2))

    @property
    def hop_length(self) -> int:
        """Samples between frames at 16 kHz."""
        return 160 if self.kind == "kaldi" else 400

    @property
    def default_target_length(self) -> int:
        """Frames per clip in the paper's AudioSet recipes: 1024 (kaldi), 400 (mel)."""
        return 1024 if self.kind == "kaldi" else 400

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a clip of `num_samples` samples (before padding/cropping)."""
        if self.kind == "kaldi":  # 400-sample window, snip_edges
            return max(0, 1 + (num_samples - 400) // 160)
        return 1 + num_samples // self.hop_length  # centred STFT

    @cached_property
    def _melspec(self) -> torch.nn.Module:
        return torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=4096, win_length=1024, hop_length=400, center=True,
            pad_mode="constant", power=2, norm="slaney", n_mels=self.n_mels, mel_scale="slaney",
        )

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        """`wave`: 1-D float tensor at 16 kHz. Returns float32 `[time, n_mels]` (unnormalised)."""
        wave = (wave - wave.mean()).unsqueeze(0)
        if self.kind == "kaldi":
            if wave.shape[1] < 400:
                wave = torch.nn.functional.pad(wave, (0, 400 - wave.shape[1]))
            return torchaudio.compliance.kaldi.fbank(
                wave, htk_compat=True, sample_frequency=SAMPLE_RATE, use_energy=False,
                window_type="hanning", num_mel_bins=self.n_mels, dither=0.0, frame_shift=10,
            )
        spec = self._melspec(wave)[0]  # [n_mels, time]
        # 20·log10 on power, clamped at 1e-10 like AmplitudeToDB (see the module docstring).
        return (20.0 * torch.log10(torch.clamp(spec, min=1e-10))).T.contiguous()


def get_frontend(name: str) -> FrontEnd:
    """`kaldi128`, `mel64`, or any `kaldi<N>` / `mel<N>`."""
    m = _NAME.match(name)
    if not m or not 8 <= int(m.group(2)) <= 256:
        raise AtdrError(f"unknown front-end {name!r}: use kaldi<N> or mel<N> with 8 <= N <= 256 (paper: kaldi128, mel64)")
    return FrontEnd(name)


def pad_or_crop(features: torch.Tensor, target_length: int) -> torch.Tensor:
    """Zero-pad at the end or crop `[time, freq]` features to `target_length` frames."""
    n = features.shape[0]
    if n < target_length:
        return torch.nn.functional.pad(features, (0, 0, 0, target_length - n))
    return features[:target_length]
