"""The batch pipeline: padded waveforms in, the model's input out, on the device of the model.

The fast data path keeps the data workers to reading waveforms (`atdr.data.pack.PackedDataset`,
which also reads each training clip's mixup partner, drawn from the whole dataset as the
original's), collated by `collate_waves` into a `WaveBatch` (mixing each clip with its partner
there, in its row of the batch), and does the rest once per batch with tensor
operations where the model is: features (`FrontEnd.batch`), SpecAugment, normalisation (and
mixup inside the batch with `augment.mixup_partner: batch`). For a model on the CPU the data
workers make the whole input (`collate_inputs`), so that the training process keeps its cores for
the steps. What a clip becomes is the same as in the per-clip reference dataset
(`atdr.data.dataset`): without augmentation, the same features to float precision; with
augmentation, the same distributions (the same mixup draws, by each item's seed).

In the training loop:

    pipeline = BatchPipeline(frontend, target_length, (mean, std), cfg.augment)
    for batch in loader:  # DataLoader(PackedDataset(...), collate_fn=collate_waves, sampler=EpochSampler(...))
        x, y = pipeline.train_inputs(batch, device)
    ...
    x, y = pipeline.eval_inputs(batch, device)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import get_worker_info

from atdr.config import AugmentConfig
from atdr.data.audio import as_float
from atdr.data.augment import add_noise_and_roll, mask_bands_, mix, mix_waveforms
from atdr.data.features import FrontEnd


class WaveBatch(NamedTuple):
    """Clips zero-padded to the longest: `waves [B, samples]` (int16 or float), `lengths [B]`,
    `targets [B, classes]`, `seeds [B]` (the sampler's per-item seeds; 0 for evaluation)."""

    waves: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    seeds: torch.Tensor

    def generator(self) -> torch.Generator:
        """The batch's augmentation generator, seeded by its first item's seed: a pure function of
        the epoch plan, so a resumed run augments each batch exactly as before."""
        return torch.Generator().manual_seed(int(self.seeds[0]))


def collate_waves(items: list) -> WaveBatch | None:
    """Stack `(wave, target, seed, partner)` items (`PackedDataset`'s), zero-padding the waves:
    int16 PCM, or float where some are float or have a mixup `partner` `(wave, λ)`, read by the
    data worker: the item's waveform is mixed with it here (`mix_waveforms`), in the item's row
    of the batch. Items that are `None` (clips that could not be read) are dropped; `None` if
    none is left."""
    items = [item for item in items if item is not None]
    if not items:
        return None
    lengths = torch.tensor([len(wave) for wave, _, _, _ in items])
    pcm = all(wave.dtype == torch.int16 and partner is None for wave, _, _, partner in items)
    waves = torch.empty(len(items), int(lengths.max()), dtype=torch.int16 if pcm else torch.float32)
    for row, (wave, _, _, partner) in zip(waves, items):
        clip = row[:len(wave)]
        if pcm:
            clip.copy_(wave)
        else:
            as_float(wave, out=clip)
            if partner is not None:
                other, lam = partner
                mix_waveforms(clip, as_float(other), lam, out=clip)
        row[len(wave):] = 0
    targets = torch.stack([target for _, target, _, _ in items])
    return WaveBatch(waves, lengths, targets, torch.tensor([seed for _, _, seed, _ in items]))


def collate_inputs(items: list, inputs: Callable[[WaveBatch, torch.device], tuple[torch.Tensor, torch.Tensor]]
                   ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`collate_waves`, then the model's `(x, y)` on the CPU by `inputs` (`BatchPipeline.train_inputs`
    or `eval_inputs`): for a model on the CPU, the data workers make its whole input."""
    batch = collate_waves(items)
    return None if batch is None else inputs(batch, torch.device("cpu"))


@dataclass(frozen=True)
class BatchPipeline:
    """Waveforms -> normalised features `[B, target_length, n_mels]`, augmented for training.

    `norm` is `(mean, std)` for `(x - mean) / (2 * std)` (None: unnormalised). Randomness comes
    from the CPU generator passed to `train`, so a batch is augmented identically on any device.
    """

    frontend: FrontEnd
    target_length: int
    norm: tuple[float, float] | None
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def eval(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Features of clip `i` = `waves[i, :lengths[i]]` (int16 PCM or float in [-1, 1])."""
        return self._features(as_float(waves), lengths)

    def train_inputs(self, batch: WaveBatch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch as the model's `(x, y)` on `device` (`train`)."""
        return self.train(batch.waves.to(device, non_blocking=True), batch.lengths,
                          batch.targets.to(device, non_blocking=True), batch.generator())

    def eval_inputs(self, batch: WaveBatch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """An evaluation batch as the model's `(x, y)` on `device` (`eval`)."""
        return (self.eval(batch.waves.to(device, non_blocking=True), batch.lengths),
                batch.targets.to(device, non_blocking=True))

    def train(self, waves: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented features and (mixed) targets, as the original loader's training items:
        mixup of waveforms, features, one frequency and one time mask, normalisation, noise.

        Mixup happens here only with `augment.mixup_partner: batch`: the partner is then the clip
        at the same place in a random permutation of the batch, instead of one drawn uniformly
        from the whole dataset as the original does (and `PackedDataset` with `dataset`, the
        default, before the batch is made). The batch is itself a random draw from the epoch plan,
        so a partner is a random clip as before; but (1) with balanced sampling (`data.weights`)
        partners follow the balanced distribution rather than the uniform one, (2) each clip of a
        batch is the partner of exactly one other, and (3) a clip is its own partner with
        probability 1/B rather than 1/N (mixing it with itself leaves it unchanged). λ ~ Beta(α, α)
        and the label arithmetic are the original's.
        """
        aug = self.augment
        waves = as_float(waves)
        if aug.mixup > 0 and aug.mixup_partner == "batch":
            waves, targets = self._mixup(waves, torch.as_tensor(lengths).cpu(), targets, generator)
        features = self._features(waves, lengths)
        # Masks hold 0 before normalisation, as in the original: the normalised value of 0.
        features = mask_bands_(features, aug.freqm, aug.timem, generator, self._normalise(torch.zeros(())).item())
        if aug.noise:
            features = add_noise_and_roll(features, generator)
        return features, targets

    def _mixup(self, waves: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        count = len(waves)
        chosen = torch.rand(count, generator=generator) < self.augment.mixup
        partner = torch.randperm(count, generator=generator)
        beta_seed = int(torch.randint(2**62, (1,), generator=generator))  # torch has no seeded Beta sampler
        alpha = self.augment.mixup_alpha
        lam = torch.from_numpy(np.random.default_rng(beta_seed).beta(alpha, alpha, count)).float()
        rows = chosen.nonzero()[:, 0]
        if len(rows) == 0:
            return waves, targets
        mates = partner[rows]
        on = rows.to(waves.device), mates.to(waves.device)
        mixed = waves.index_put((on[0],), mix(waves[on[0]], waves[on[1]], lam[rows], lengths[rows], lengths[mates]))
        weight = lam[rows].to(targets)[:, None]
        targets = targets.index_put((on[0],), weight * targets[on[0]] + (1.0 - weight) * targets[on[1]])
        return mixed, targets

    def _features(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Normalised features of float waves. In a DataLoader worker (`collate_inputs`) they are
        made in shared memory, as `default_collate` makes its batches there: the DataLoader would
        otherwise copy them there to pass them to the training process."""
        shape = (len(waves), self.target_length, self.frontend.n_mels)
        out = _shared_empty(shape) if waves.device.type == "cpu" and get_worker_info() is not None else None
        return self._normalise(self.frontend.batch(waves, lengths, self.target_length, out))

    def _normalise(self, features: torch.Tensor) -> torch.Tensor:
        """`(x - mean) / (2 * std)`, in place on the pipeline's own features."""
        if self.norm is None:
            return features
        mean, std = self.norm
        return features.sub_(mean).div_(2 * std)


def _shared_empty(shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised float32 CPU tensor in shared memory."""
    return torch.empty(0).set_(torch.UntypedStorage._new_shared(math.prod(shape) * 4), 0, shape)
