"""Audio loading with soundfile: mono float32 at the model's sample rate."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from atdr.errors import AtdrError

SAMPLE_RATE = 16000


class AudioConversionWarning(UserWarning):
    """A clip was downmixed or resampled on load (said once per kind of conversion)."""


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, resample: bool = True) -> torch.Tensor:
    """Read a clip as a 1-D float32 tensor at `sample_rate`; stereo is averaged to mono.

    Clips at another rate are resampled (or rejected with `resample=False`). Unreadable or empty
    files raise `AtdrError` naming the file.
    """
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AtdrError(f"cannot read audio {path}: {e}") from None
    if data.shape[0] == 0:
        raise AtdrError(f"audio {path} is empty (0 samples)")
    if data.shape[1] > 1:
        warnings.warn(f"downmixing {data.shape[1]}-channel clips to mono", AudioConversionWarning, stacklevel=2)
        data = data.mean(axis=1, keepdims=True)
    wave = torch.from_numpy(np.ascontiguousarray(data[:, 0]))
    if sr != sample_rate:
        if not resample:
            raise AtdrError(f"audio {path} is at {sr} Hz, expected {sample_rate} Hz (resample it first)")
        warnings.warn(f"resampling clips from {sr} Hz to {sample_rate} Hz", AudioConversionWarning, stacklevel=2)
        wave = torchaudio.functional.resample(wave, sr, sample_rate)
    return wave


def write_audio(path: str | Path, wave: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> None:
    """Write a mono clip as 16-bit PCM WAV (AudioSet's downloaded clip format)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(wave, dtype=np.float32), sample_rate, subtype="PCM_16")
