"""Feature front-ends: clips -> log-mel features `[time, freq]`, as the original recipes.

- `kaldi<N>` (default `kaldi128`): Kaldi-compatible fbank with exactly the options of the original
  (`torchaudio.compliance.kaldi.fbank(htk_compat=True, window_type="hanning", dither=0,
  frame_shift=10, use_energy=False)`): 25 ms Hanning frames every 10 ms, per-frame DC removal and
  pre-emphasis 0.97 as Kaldi, power spectrum on 512 points, N mel bins, log floored at float32's
  epsilon. 998 frames for 10 s, padded to 1024 by the recipes.
- `mel<N>` (the paper's "small feature", `mel64`): `MelSpectrogram(n_fft=4096, win_length=1024,
  hop_length=400, slaney)` then dB: 401 frames for 10 s, cropped to 400 by the recipes.
  Faithful quirk: the original builds `AmplitudeToDB(spec)`, which passes the spectrogram as
  `stype`, so its power spectrogram gets the *amplitude* multiplier (20·log10). Kept here so the
  paper's norm stats and checkpoints stay valid.

Both remove the clip's mean first, as the original loader. One implementation serves single
clips and batches (`FrontEnd.batch`, on the CPU or a GPU): a clip alone is a batch of one, and a
clip in a zero-padded batch gets the same features as alone (`tests/test_batch_features.py`
checks both against torchaudio).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import torch
import torchaudio
from torchaudio.compliance import kaldi

from atdr.data.audio import SAMPLE_RATE
from atdr.errors import AtdrError

_NAME = re.compile(r"^(kaldi|mel)(\d+)$")

# Kaldi frames: 25 ms window, 10 ms shift, FFT on the next power of two.
_KALDI_WINDOW, _KALDI_SHIFT, _KALDI_FFT = 400, 160, 512
_PREEMPHASIS = 0.97
_EPSILON = torch.finfo(torch.float32).eps  # Kaldi's log floor
# mel front-end: the window (1024 samples) sits in the middle of each 4096-point centred frame.
_MEL_FFT, _MEL_WINDOW, _MEL_HOP = 4096, 1024, 400
# Largest intermediate (frames x FFT points) computed at once; bigger batches go in chunks. On the
# CPU, chunks that stay in the caches are faster: one 10-s clip at a time.
_CHUNK_VALUES = {"cpu": 2**19, "cuda": 2**26}
_MEL_BLOCK = 32  # mel filters per block of `_MelBlocks` (kaldi128 on the CPU: 16 and 32 fastest, 8 and 64 slower)


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
        return _KALDI_SHIFT if self.kind == "kaldi" else _MEL_HOP

    @property
    def default_target_length(self) -> int:
        """Frames per clip in the paper's AudioSet recipes: 1024 (kaldi), 400 (mel)."""
        return 1024 if self.kind == "kaldi" else 400

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a clip of `num_samples` samples (before padding/cropping)."""
        if self.kind == "kaldi":  # snip_edges; a clip shorter than a window is padded to one frame
            return 1 + (max(num_samples, _KALDI_WINDOW) - _KALDI_WINDOW) // _KALDI_SHIFT
        return 1 + num_samples // _MEL_HOP  # centred STFT

    def _samples_for(self, frames: int) -> int:
        """Samples that the first `frames` frames read (what lies after cannot change them)."""
        if self.kind == "kaldi":
            return _KALDI_WINDOW + (frames - 1) * _KALDI_SHIFT
        return (frames - 1) * _MEL_HOP + _MEL_WINDOW // 2

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        """`wave`: 1-D float tensor at 16 kHz. Returns float32 `[time, n_mels]` (unnormalised)."""
        return self.batch(wave.unsqueeze(0))[0]

    @torch.no_grad()
    def batch(self, waves: torch.Tensor, lengths: torch.Tensor | None = None,
              target_length: int | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
        """Features of a batch of clips, on the device of `waves`.

        `waves`: float `[B, samples]`, clip `i` in its first `lengths[i]` samples (default: all;
        the rest is ignored). Returns float32 `[B, frames, n_mels]`: each clip's own frames, then
        zeros (as `pad_or_crop`), `target_length` frames (default: the longest clip's); written
        into `out` when given (e.g. in shared memory).
        """
        waves = waves.float()
        count, width = waves.shape
        lengths = torch.full((count,), width) if lengths is None else torch.as_tensor(lengths).cpu()
        frames = torch.tensor([self.num_frames(n) for n in lengths.tolist()])
        target_length = target_length or int(frames.max())
        if out is None:
            out = torch.empty(count, target_length, self.n_mels, device=waves.device)
        kaldi = self.kind == "kaldi"
        fft = _KALDI_FFT if kaldi else _MEL_FFT
        rows = max(1, _CHUNK_VALUES.get(waves.device.type, _CHUNK_VALUES["cuda"]) // (target_length * fft))
        # Each chunk's clips, centred, in one buffer: the samples the frames read (Kaldi needs one whole window).
        samples = max(min(width, self._samples_for(target_length)), _KALDI_WINDOW if kaldi else 0)
        chunk = waves.new_empty(min(rows, count), samples)
        with torch.autocast(waves.device.type, enabled=False), _fp32_matmul():
            for start in range(0, count, rows):
                stop = min(start + rows, count)
                clips = centre(waves[start:stop], lengths[start:stop], out=chunk[:stop - start])
                computed = (self._kaldi if kaldi else self._mel)(clips, out[start:stop], target_length)
        out[:, computed:] = 0.0
        if bool((frames < computed).any()):  # clips shorter than the batch: zeros after their frames
            out.masked_fill_((torch.arange(target_length) >= frames[:, None]).to(out.device)[..., None], 0.0)
        return out

    def _kaldi(self, clips: torch.Tensor, out: torch.Tensor, target_length: int) -> int:
        """torchaudio.compliance.kaldi.fbank, batched: the frames get the same operations in the
        same order (bit-identical up to the FFT), written in place into the zero-padded FFT buffer;
        then the mel energies of the power spectrum (`_MelBlocks`) and their log, written into
        `out [B, ≥ frames, n_mels]`. Returns the number of frames."""
        window, banks = _kaldi_constants(self.n_mels, clips.device)
        strided = clips.unfold(1, _KALDI_WINDOW, _KALDI_SHIFT)[:, :target_length]  # [B, T, 400], a view
        padded = clips.new_empty(*strided.shape[:2], _KALDI_FFT)
        padded[..., _KALDI_WINDOW:] = 0.0
        frames = padded[..., :_KALDI_WINDOW]
        torch.sub(strided, strided.mean(dim=-1, keepdim=True), out=frames)  # DC removal per frame
        previous = frames * _PREEMPHASIS  # pre-emphasis, the first sample replicated
        frames[..., 1:] -= previous[..., :-1]
        frames[..., 0] -= previous[..., 0]
        frames *= window
        squares = torch.view_as_real(torch.fft.rfft(padded)).square_().flatten(-2)  # re², im² of each bin
        computed = squares.shape[1]
        # |X|² = re² + im², summed by the mel product; Kaldi's log floor
        torch.clamp(banks(squares), min=_EPSILON, out=out[:, :computed]).log_()
        return computed

    def _mel(self, clips: torch.Tensor, out: torch.Tensor, target_length: int) -> int:
        """The mel spectrogram in dB (20·log10 on power, clamped at 1e-10 like AmplitudeToDB: see the
        module docstring), written into `out [B, ≥ frames, n_mels]`. Returns the number of frames."""
        spec = _mel_spectrogram(self.n_mels, clips.device)(clips)[..., :target_length]  # [B, n_mels, T]
        computed = spec.shape[-1]
        torch.clamp(spec, min=1e-10, out=out[:, :computed].transpose(1, 2)).log10_().mul_(20.0)
        return computed


@contextmanager
def _fp32_matmul() -> Iterator[None]:
    """Full fp32 matrix products, also where the training sets TF32/bf16 matmul precision for
    speed (`torch.set_float32_matmul_precision`): features must not depend on it."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


class _MelBlocks:
    """A mel filterbank `[rows, n_mels]` applied as blocks of `_MEL_BLOCK` neighbouring filters,
    each to the few rows its triangles cover: the products with the zeros of the full matrix
    (three quarters of them for kaldi128) are skipped. The sums are those of the full product, in
    float precision."""

    def __init__(self, banks: torch.Tensor) -> None:
        self.n_mels = banks.shape[1]
        self.blocks: list[tuple[slice, slice, torch.Tensor]] = []
        for first in range(0, self.n_mels, _MEL_BLOCK):
            columns = slice(first, min(first + _MEL_BLOCK, self.n_mels))
            used = banks[:, columns].ne(0).any(dim=1).nonzero()[:, 0]
            rows = slice(int(used.min()), int(used.max()) + 1) if len(used) else slice(0, 1)  # an empty block: zeros
            self.blocks.append((columns, rows, banks[rows, columns].contiguous()))

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        """`values [..., rows]` -> mel energies `[..., n_mels]`."""
        flat = values.reshape(-1, values.shape[-1])
        energies = flat.new_empty(len(flat), self.n_mels)
        for columns, rows, weights in self.blocks:
            torch.mm(flat[:, rows], weights, out=energies[:, columns])
        return energies.view(*values.shape[:-1], self.n_mels)


@lru_cache(maxsize=None)
def _kaldi_constants(n_mels: int, device: torch.device) -> tuple[torch.Tensor, _MelBlocks]:
    """Kaldi's Hanning window, and its mel filterbank (torchaudio's own) for the squares of the
    FFT's real and imaginary parts side by side: each bin's weight twice, `[2 (FFT/2 + 1), n_mels]`."""
    window = torch.hann_window(_KALDI_WINDOW, periodic=False)
    banks, _ = kaldi.get_mel_banks(n_mels, _KALDI_FFT, float(SAMPLE_RATE), 20.0, 0.0, 100.0, -500.0, 1.0)
    banks = torch.nn.functional.pad(banks, (0, 1))  # the Nyquist bin gets no weight
    return window.to(device), _MelBlocks(banks.T.repeat_interleave(2, dim=0).to(device))


@lru_cache(maxsize=None)
def _mel_spectrogram(n_mels: int, device: torch.device) -> torch.nn.Module:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=SAMPLE_RATE, n_fft=_MEL_FFT, win_length=_MEL_WINDOW, hop_length=_MEL_HOP, center=True,
        pad_mode="constant", power=2, norm="slaney", n_mels=n_mels, mel_scale="slaney",
    ).to(device)


def centre(waves: torch.Tensor, lengths: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Remove each clip's mean over its first `lengths[i]` samples; the samples after become 0.

    Each mean is taken as `wave.mean()` of the clip alone, so a clip gives the same numbers in a
    batch as on its own (Kaldi features are sensitive to the last bit in quiet mel bins). Written
    into `out` when given: float `[B, samples]`, narrower than `waves` (the first samples) or
    wider (zeros after).
    """
    count, width = waves.shape
    if lengths is None:
        lengths = torch.full((count,), width)
    lengths = torch.as_tensor(lengths).cpu()
    means = torch.stack([wave[:n].mean() for wave, n in zip(waves, lengths.tolist())])
    if out is None:
        out = torch.empty_like(waves)
    kept = min(width, out.shape[1])
    torch.sub(waves[:, :kept], means[:, None], out=out[:, :kept])
    out[:, kept:] = 0.0
    if bool((lengths < kept).any()):
        out[:, :kept].masked_fill_((torch.arange(kept) >= lengths[:, None]).to(out.device), 0.0)
    return out


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
