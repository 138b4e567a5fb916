"""Audio loading with soundfile: mono float32 at the model's sample rate."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from atdr.data.notes import AudioConversionWarning
from atdr.errors import AtdrError

SAMPLE_RATE = 16000
PCM_SCALE = 32768.0  # int16 -> [-1, 1), as soundfile reads 16-bit audio
# What soundfile's libsndfile (1.2.2 in the soundfile 0.14 wheel) decodes, by file extension.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64")


def _reason(error: Exception) -> str:
    """libsndfile's own words (its exception text repeats the path)."""
    return getattr(error, "error_string", None) or str(error)


# The loudest sample read (full scale is 1): 120 dB more is no recording, and some 1e17 makes the
# features' power overflow to infinity. Float clips scaled as int16 (up to 32768) still read.
MAX_PEAK = 1e6


def _check_samples(path: str | Path, samples: np.ndarray) -> None:
    """A float file can hold NaN, infinite or absurdly large samples: they would make every feature
    and score NaN."""
    peak = np.abs(samples).max()  # NaN if any sample is NaN
    if not np.isfinite(peak):
        raise AtdrError(f"cannot read audio {path}: it holds NaN or infinite samples")
    if peak > MAX_PEAK:
        raise AtdrError(f"cannot read audio {path}: its samples reach {peak:.3g} (full scale is 1; "
                        f"more than {MAX_PEAK:.0e} is not audio)")


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise AtdrError(f"cannot read audio {path}: a folder, not a file")
    if not path.exists():
        raise AtdrError(f"cannot read audio {path}: file not found")


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, resample: bool = True) -> torch.Tensor:
    """Read a clip as a 1-D float32 tensor at `sample_rate`; stereo is averaged to mono.

    Clips at another rate are resampled (or rejected with `resample=False`). Unreadable or empty
    files, and those holding NaN, infinite or absurdly large samples (beyond `MAX_PEAK`), raise
    `AtdrError` naming the file.
    """
    _check_file(Path(path))
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AtdrError(f"cannot read audio {path}: {_reason(e)}") from None
    if data.shape[0] == 0:
        raise AtdrError(f"audio {path} is empty (0 samples)")
    _check_samples(path, data)
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


def as_float(wave: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """int16 PCM -> float32 in [-1, 1), exactly the values soundfile reads (into `out` when
    given); a float tensor stays as it is (copied into `out`)."""
    if wave.dtype == torch.int16:  # a cast, then an exact scaling: both vectorised (a mixed-type mul is not)
        return (wave.float() if out is None else out.copy_(wave)).mul_(1 / PCM_SCALE)
    return wave.float() if out is None else out.copy_(wave)


@dataclass(frozen=True)
class AudioInfo:
    """A clip's header: what `load_audio` will convert (resample, downmix)."""

    sample_rate: int
    channels: int
    frames: int


def audio_info(path: str | Path, decode: bool = False) -> AudioInfo:
    """Read a clip's header (and with `decode`, every sample, in blocks); `AtdrError` saying why
    the clip cannot be used: not found, a folder, not a readable format, corrupt, empty or (with
    `decode`) holding NaN, infinite or absurdly large samples."""
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
        if decode:
            for block in sf.blocks(str(path), blocksize=1 << 16, dtype="float32"):
                _check_samples(path, block)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AtdrError(f"cannot read audio {path}: {_reason(e)}") from None
    if info.frames == 0:
        raise AtdrError(f"audio {path} is empty (0 samples)")
    return AudioInfo(info.samplerate, info.channels, info.frames)


def file_stamp(path: str | Path) -> tuple[int, int] | None:
    """A clip file's size and modification time (ns), one `stat`: a file rewritten or replaced
    under the same name gets another stamp. None: no such file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def write_audio(path: str | Path, wave: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> None:
    """Write a mono clip as 16-bit PCM WAV (AudioSet's downloaded clip format)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(wave, dtype=np.float32), sample_rate, subtype="PCM_16")
