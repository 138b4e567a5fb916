"""The batch pipeline: padded waveforms in, the model's input out, on the device of the model.

The fast data path keeps the data workers to reading waveforms (`atdr.data.pack.PackedDataset`,
collated by `collate_waves` into a `WaveBatch`), and does the rest once per batch with tensor
operations where the model is: mixup, features (`FrontEnd.batch`), SpecAugment, normalisation.
What a clip becomes is the same as in the per-clip reference dataset (`atdr.data.dataset`):
without augmentation, the same features to float precision; with augmentation, the same
distributions, with one documented difference (mixup partners, see `BatchPipeline.train`).

In the training loop:

    pipeline = BatchPipeline(frontend, target_length, (mean, std), cfg.augment)
    for batch in loader:  # DataLoader(PackedDataset(...), collate_fn=collate_waves, sampler=EpochSampler(...))
        x, y = pipeline.train(batch.waves.to(device), batch.lengths, batch.targets.to(device), batch.generator())
    ...
    x = pipeline.eval(batch.waves.to(device), batch.lengths)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from atdr.config import AugmentConfig
from atdr.data.augment import add_noise_and_roll, mask_bands, mix
from atdr.data.features import FrontEnd

PCM_SCALE = 32768.0  # int16 -> [-1, 1), as soundfile reads 16-bit audio


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
    """Stack `(wave, target, seed)` items, zero-padding the waves; items that are `None`
    (clips that could not be read) are dropped; `None` if none is left."""
    items = [item for item in items if item is not None]
    if not items:
        return None
    lengths = torch.tensor([len(wave) for wave, _, _ in items])
    waves = items[0][0].new_zeros(len(items), int(lengths.max()))
    for row, (wave, _, _) in zip(waves, items):
        row[:len(wave)] = wave
    targets = torch.stack([target for _, target, _ in items])
    return WaveBatch(waves, lengths, targets, torch.tensor([seed for _, _, seed in items]))


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
        return self._normalise(self.frontend.batch(_as_float(waves), lengths, self.target_length))

    def train(self, waves: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented features and (mixed) targets, as the original loader's training items:
        mixup of waveforms, features, one frequency and one time mask, normalisation, noise.

        Mixup differs from the original in where the partner comes from: the original mixes a clip
        (with probability `mixup`) with a partner drawn uniformly from the whole dataset; here the
        partner is the clip at the same place in a random permutation of the batch. The batch is
        itself a random draw from the epoch plan, so a partner is a random clip as before; but
        (1) with balanced sampling (`data.weights`) partners follow the balanced distribution
        rather than the uniform one, (2) each clip of a batch is the partner of exactly one other,
        and (3) a clip is its own partner with probability 1/B rather than 1/N (mixing it with
        itself leaves it unchanged). λ ~ Beta(α, α) and the label arithmetic are the original's.
        """
        aug = self.augment
        waves = _as_float(waves)
        if aug.mixup > 0:
            waves, targets = self._mixup(waves, torch.as_tensor(lengths).cpu(), targets, generator)
        features = self._normalise(self.frontend.batch(waves, lengths, self.target_length))
        # Masks hold 0 before normalisation, as in the original: the normalised value of 0.
        features = mask_bands(features, aug.freqm, aug.timem, generator, self._normalise(torch.zeros(())).item())
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

    def _normalise(self, features: torch.Tensor) -> torch.Tensor:
        """`(x - mean) / (2 * std)`, in place on the pipeline's own features."""
        if self.norm is None:
            return features
        mean, std = self.norm
        return features.sub_(mean).div_(2 * std)


def _as_float(waves: torch.Tensor) -> torch.Tensor:
    """int16 PCM -> float32 in [-1, 1) (exactly soundfile's values); float stays as it is."""
    return waves.to(torch.float32).mul_(1 / PCM_SCALE) if waves.dtype == torch.int16 else waves.float()
