"""The two data paths behind one interface: clips -> loaders -> the model's `(x, y)` on its device.

- `ReferenceLoaders` (`data.loader: reference`): the original loader's way, one clip at a time
  in the data workers: decode, resample, features, augmentation, normalisation
  (`atdr.data.dataset.AudioDataset`). The reference the fast path is checked against.
- `PackedLoaders` (`data.loader: packed`, the default): the workers read 16 kHz waveforms from a
  packed store (`atdr pack`: one memory-mapped file per datafile, `<stem>.pack` beside it) and mix
  training clips with partners read from it; features, SpecAugment and normalisation run once per
  batch (`atdr.data.pipeline.BatchPipeline`): on the GPU in the training process, or, for a model
  on the CPU, in the data workers, whose cores would otherwise idle while the training process
  needs its own for the steps. Without augmentation both paths give the same features.

The training loop chooses one at set-up (`run_loaders`) and then only calls `loader`,
`train_inputs` and `eval_inputs`; robustness probing and the cost analysis score a run's eval set
through the same calls. A `loader` may change each clip's waveform first (`wave_transform`:
probing); on the packed path it may read its clips from the store of a larger datafile (`store`:
`data.train_store`, the analyses' subsets and relabelled training sets).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler

from atdr.config import AugmentConfig, RunConfig
from atdr.data.datafile import Clip, read_datafile
from atdr.data.dataset import AudioDataset, WaveTransform, batch_loader, reference_inputs
from atdr.data.features import FrontEnd
from atdr.data.labels import LabelSet
from atdr.data.pack import PackedDataset, PackedStore, pack
from atdr.data.pipeline import BatchPipeline, WaveBatch, collate_inputs, collate_waves

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceLoaders:
    """Features made per clip in the data workers (`AudioDataset`)."""

    labels: LabelSet
    frontend: FrontEnd
    target_length: int
    norm: tuple[float, float]
    augment: AugmentConfig
    skip_unreadable: bool

    def loader(self, datafile: Path, clips: list[Clip], batch_size: int, sampler: Sampler | None = None,
               store: Path | None = None, wave_transform: WaveTransform | None = None, **kwargs) -> DataLoader:
        """Batches of `clips`, read from their audio files (`datafile` and `store` unused):
        augmented training items when `sampler` gives `(index, seed)` keys."""
        dataset = AudioDataset(clips, self.labels, self.frontend, self.target_length, self.norm,
                               self.augment if sampler is not None else None, skip_unreadable=self.skip_unreadable,
                               wave_transform=wave_transform)
        return batch_loader(dataset, batch_size, sampler=sampler, **kwargs)

    def train_inputs(self, clips: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return reference_inputs(clips, device)

    def eval_inputs(self, clips: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return reference_inputs(clips, device)


@dataclass(frozen=True)
class PackedLoaders:
    """Waveforms read from packed stores; features and augmentation per batch, on the device, or
    in the data workers (`in_workers`, for a model on the CPU)."""

    labels: LabelSet
    pipeline: BatchPipeline
    skip_unreadable: bool
    in_workers: bool

    def loader(self, datafile: Path, clips: list[Clip], batch_size: int, sampler: Sampler | None = None,
               store: Path | None = None, wave_transform: WaveTransform | None = None, **kwargs) -> DataLoader:
        """Batches of `clips` from the datafile's store, or from `store`, a larger datafile's that
        holds them (found there by audio file)."""
        packed = PackedStore(store or store_of(datafile))
        dataset = PackedDataset(packed, clips, self.labels, self.skip_unreadable,
                                packed.locate(clips) if store else None, wave_transform,
                                mixup=self.pipeline.augment if sampler is not None else None)
        collate = collate_waves
        if self.in_workers:
            inputs = self.pipeline.train_inputs if sampler is not None else self.pipeline.eval_inputs
            collate = partial(collate_inputs, inputs=inputs)
        return batch_loader(dataset, batch_size, collate_fn=collate, sampler=sampler, **kwargs)

    def train_inputs(self, batch: WaveBatch | tuple[torch.Tensor, torch.Tensor],
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return reference_inputs(batch, device) if self.in_workers else self.pipeline.train_inputs(batch, device)

    def eval_inputs(self, batch: WaveBatch | tuple[torch.Tensor, torch.Tensor],
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return reference_inputs(batch, device) if self.in_workers else self.pipeline.eval_inputs(batch, device)


Loaders = ReferenceLoaders | PackedLoaders


def run_loaders(cfg: RunConfig, labels: LabelSet, frontend: FrontEnd, norm: tuple[float, float],
                device: torch.device) -> Loaders:
    """The data path of a run config (`data.loader`) with its augmentation and normalisation, for
    a model on `device`."""
    d = cfg.data
    if d.loader == "packed":
        return PackedLoaders(labels, BatchPipeline(frontend, d.target_length, norm, cfg.augment),
                             cfg.train.skip_unreadable, in_workers=device.type == "cpu")
    return ReferenceLoaders(labels, frontend, d.target_length, norm, cfg.augment, cfg.train.skip_unreadable)


def store_of(datafile: str | Path) -> Path:
    """The packed store of a datafile: `<stem>.pack` beside it (where `atdr pack` writes it)."""
    return Path(datafile).with_suffix(".pack")


def ensure_packed(datafile: str | Path, clips: list[Clip] | None = None) -> Path:
    """The datafile's store, packed first if it is not there yet or is out of date
    (`PackedStore.outdated`: the datafile lists other clips, or a clip's file changed since);
    `clips`: the datafile's, where the caller has read them."""
    store = store_of(datafile)
    if not store.exists():
        log.info("packing %s into %s (once; `atdr pack` does this ahead of training)", datafile, store)
    else:
        clips = read_datafile(datafile, check_files=False) if clips is None else clips
        outdated = PackedStore(store).outdated(clips)
        if outdated is None:
            return store
        log.warning("packing %s into %s again: %s", datafile, store, outdated)
    pack(datafile, store)
    return store
