"""Inference with a trained model: tag audio files of any length, rate and channel count.

Clips longer than the model's input are cut into windows of `target_length` frames (hop
configurable, the last window aligned to the end); the clip-level score of a class is its maximum
over windows (an event anywhere in the file counts). A clip as long as the input is one window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from atdr.checkpoint import ModelBundle
from atdr.data.audio import SAMPLE_RATE, load_audio
from atdr.data.datafile import read_datafile
from atdr.data.dataset import AudioDataset, batch_loader
from atdr.data.features import get_frontend, pad_or_crop
from atdr.predict import predict


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def predict_datafile(bundle: ModelBundle, datafile: str | Path, batch_size: int = 32,
                     workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and targets of `bundle`'s model on every clip of a datafile."""
    device = _device()
    labels = bundle.labels
    dataset = AudioDataset(read_datafile(datafile, labels), labels, get_frontend(bundle.frontend),
                           bundle.target_length, (bundle.mean, bundle.std))
    result = predict(bundle.build().to(device), batch_loader(dataset, batch_size, num_workers=workers), device)
    return result.probs, result.targets


@dataclass(frozen=True)
class Tags:
    path: str
    starts: np.ndarray  # window start times, seconds
    ends: np.ndarray  # window end times, seconds (capped at the clip's end)
    windows: np.ndarray  # [windows, classes] probabilities
    clip: np.ndarray  # [classes]: max over windows


class Tagger:
    """A model bundle ready to tag files: `Tagger(bundle)(path, hop_seconds)`."""

    def __init__(self, bundle: ModelBundle, batch_size: int = 16) -> None:
        self.bundle = bundle
        self.frontend = get_frontend(bundle.frontend)
        self.device = _device()
        self.model = bundle.build().to(self.device)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, path: str | Path, hop_seconds: float) -> Tags:
        wave = load_audio(path)
        features = self.frontend(wave)
        # Frames centred inside the clip: a centred STFT (mel) adds one centred just past its end
        # (401 frames for 10 s, of which training uses 400); that one must not ask for a window.
        total = min(features.shape[0], math.ceil(len(wave) / self.frontend.hop_length))
        size = self.bundle.target_length
        hop = max(1, round(hop_seconds * SAMPLE_RATE / self.frontend.hop_length))
        starts = list(range(0, max(total - size, 0) + 1, hop))
        if starts[-1] + size < total:
            starts.append(total - size)
        x = torch.stack([pad_or_crop(features[s : s + size], size) for s in starts])
        x = (x - self.bundle.mean) / (2 * self.bundle.std)
        probs = torch.cat([self.model.predict_proba(x[i : i + self.batch_size].to(self.device)).float().cpu()
                           for i in range(0, len(x), self.batch_size)]).numpy()
        seconds = self.frontend.hop_length / SAMPLE_RATE
        duration = len(wave) / SAMPLE_RATE
        starts_s = np.array(starts) * seconds
        return Tags(str(path), starts_s, np.minimum(starts_s + size * seconds, duration), probs, probs.max(axis=0))
