"""The training/evaluation `Dataset`: clips -> normalised `[time, freq]` features + targets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from atdr.config import AugmentConfig
from atdr.data.audio import load_audio
from atdr.data.augment import mix_waveforms, noise_and_roll, spec_augment
from atdr.data.datafile import Clip
from atdr.data.features import FrontEnd, pad_or_crop
from atdr.data.labels import LabelSet
from atdr.errors import AtdrError

log = logging.getLogger(__name__)


class Waves(Protocol):
    """A set of clips as 16 kHz float waveforms (`AudioDataset`, `PackedDataset`)."""

    def __len__(self) -> int: ...

    def wave(self, index: int) -> torch.Tensor | None:
        """Clip `index`, or `None` where it cannot be read (skipped)."""


class LabelledWaves(Waves, Protocol):
    """`Waves` with their clips and class list (`AudioDataset`, `PackedDataset`)."""

    clips: list[Clip]
    labels: LabelSet


def mix_targets(target: np.ndarray, other: np.ndarray, lam: float) -> np.ndarray:
    """The original's label arithmetic of a mixed item: `λ·target + (1-λ)·other`."""
    return lam * target + (1.0 - lam) * other


def read_partner(dataset: LabelledWaves, rng: np.random.Generator, augment: AugmentConfig,
                 read: Callable[[int], Any]) -> tuple[Any, np.ndarray, float] | None:
    """The original loader's mixup draw for one training item: with probability `augment.mixup`,
    a partner drawn uniformly from the whole dataset (under balanced sampling too, as the
    original's `--bal bal`) and λ ~ Beta(α, α). Returns `(wave, target, λ)`, the partner's
    waveform as `read` gives it; None when not drawn or when `read` could not read it (None).
    Draws nothing from `rng` when `augment.mixup` is 0."""
    if augment.mixup <= 0 or rng.random() >= augment.mixup:
        return None
    partner = int(rng.integers(len(dataset)))
    lam = float(rng.beta(augment.mixup_alpha, augment.mixup_alpha))
    wave = read(partner)
    if wave is None:
        return None
    return wave, dataset.labels.encode(dataset.clips[partner].labels), lam


def mixup_from_dataset(dataset: LabelledWaves, wave: torch.Tensor, target: np.ndarray, rng: np.random.Generator,
                       augment: AugmentConfig) -> tuple[torch.Tensor, np.ndarray]:
    """The original loader's mixup of one training item (`read_partner`): λ weighs both waveforms
    (`mix_waveforms`) and both label vectors. Unchanged when not drawn or when the partner cannot
    be read."""
    partner = read_partner(dataset, rng, augment, dataset.wave)
    if partner is None:
        return wave, target
    other, other_target, lam = partner
    return mix_waveforms(wave, other, lam), mix_targets(target, other_target, lam)


# A change of a clip's waveform (robustness probing: `atdr.data.perturb`): `(wave, index, set)`,
# where `set` is the clip's own set (babble mixes in other clips of it).
WaveTransform = Callable[[torch.Tensor, int, Waves], torch.Tensor]


class AudioDataset(Dataset):
    """Index with an int for plain features (evaluation), or with `(index, seed)` from
    `EpochSampler` for augmented training items (a pure function of the seed).

    Returns `(features [target_length, n_mels], target [n_classes])`, or `None` for a clip that
    cannot be read when `skip_unreadable` is set (logged once per clip; `collate` drops it).
    `wave_transform(wave, index, dataset)`, if given, changes each clip's waveform after loading
    (robustness probing: `atdr.data.perturb`).
    """

    def __init__(
        self,
        clips: list[Clip],
        labels: LabelSet,
        frontend: FrontEnd,
        target_length: int,
        norm: tuple[float, float] | None,
        augment: AugmentConfig | None = None,
        skip_unreadable: bool = False,
        wave_transform: WaveTransform | None = None,
    ) -> None:
        self.clips = clips
        self.labels = labels
        self.frontend = frontend
        self.target_length = target_length
        self.norm = norm
        self.augment = augment or AugmentConfig()
        self.skip_unreadable = skip_unreadable
        self.wave_transform = wave_transform
        self._reported: set[str] = set()

    def __len__(self) -> int:
        return len(self.clips)

    def wave(self, index: int) -> torch.Tensor | None:
        """Clip `index` as `load_audio` reads it (`None`: unreadable and skipped)."""
        path = self.clips[index].wav
        try:
            return load_audio(path)
        except AtdrError as e:
            if not self.skip_unreadable:
                raise
            if path not in self._reported:
                self._reported.add(path)
                log.warning("skipping unreadable clip: %s", e)
            return None

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor] | None:
        index, seed = key if isinstance(key, tuple) else (key, None)
        wave = self.wave(index)
        if wave is None:
            return None
        if self.wave_transform is not None:
            wave = self.wave_transform(wave, index, self)
        target = self.labels.encode(self.clips[index].labels)
        aug, rng = (self.augment, np.random.default_rng(seed)) if seed is not None else (AugmentConfig(), None)
        wave, target = mixup_from_dataset(self, wave, target, rng, aug)
        features = pad_or_crop(self.frontend(wave), self.target_length)
        if seed is not None:
            features = spec_augment(features, aug.freqm, aug.timem, seed)
        if self.norm is not None:
            mean, std = self.norm
            features = (features - mean) / (2 * std)
        if aug.noise:
            features = noise_and_roll(features, rng)
        return features, torch.from_numpy(target)


def collate(batch: list) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`default_collate` without the items that could not be read; `None` if none is left."""
    batch = [item for item in batch if item is not None]
    return default_collate(batch) if batch else None


class Batch(NamedTuple):
    """What a loader of `batch_loader` yields: the collated clips that could be read (`None` when
    none could) and the dataset indices of those that could not, so that nothing is dropped
    without a record."""

    clips: Any  # (features [B, time, freq], targets [B, classes]) from `collate`; a WaveBatch from `collate_waves`
    unreadable: list[int]


class _Numbered(Dataset):
    """A dataset's items with their index: `(index, item)`."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[int, tuple | None]:
        return (key[0] if isinstance(key, tuple) else key), self.dataset[key]


def _collate_numbered(items: list[tuple[int, tuple | None]], collate_fn: Callable[[list], Any]) -> Batch:
    return Batch(collate_fn([item for _, item in items]), [i for i, item in items if item is None])


def reference_inputs(clips: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of `collate`d features and targets, on `device`: the model's `(x, y)`."""
    features, targets = clips
    return features.to(device, non_blocking=True), targets.to(device, non_blocking=True)


def batch_loader(dataset: Dataset, batch_size: int, collate_fn: Callable[[list], Any] = collate, **kwargs) -> DataLoader:
    """A DataLoader of `Batch`es of `dataset`, its readable items put together by `collate_fn`
    (which drops `None` items and returns `None` when none is left); other keyword arguments as
    DataLoader's."""
    return DataLoader(_Numbered(dataset), batch_size, collate_fn=partial(_collate_numbered, collate_fn=collate_fn),
                      **kwargs)
