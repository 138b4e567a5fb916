"""Data pipeline throughput, as ratios against the original loader measured in the same run.

Baseline: the original's training loader (`src/dataloader.py`): per clip, in N DataLoader workers,
read the file; with probability `mixup` draw a partner uniformly from the whole dataset and read
its file too, mix the two waveforms with λ ~ Beta(10, 10); Kaldi fbank (torchaudio); pad or crop;
FrequencyMasking and TimeMasking (torchaudio); normalise. The same library calls as the original
(soundfile reads the files: torchaudio.load needs FFmpeg here). The clips are 16 kHz mono 16-bit
FLAC files, as the original's AudioSet datafiles list them (and `atdr download` stores them), or
WAV with `--format wav`. Compared, on the same clips, with the same N workers and the same
threads in the main process (what `atdr train` sets: `atdr.threads`), each timed in turn with
the others (the best of `--rounds` rounds) so that a busy machine's changing load reaches all alike:

- the reference loader (`data.loader: reference`, `AudioDataset`): the same work per clip, with
  atdr's front-end;
- the packed loader (`PackedDataset` + `BatchPipeline`), with the original's mixup partners
  (`augment.mixup_partner: dataset`, the workers read and mix them) or partners from the batch
  (`batch`):
  - waveforms only: what the training loop waits for when the features are made on the GPU;
  - features in the main process (`BatchPipeline.train` on the CPU after the loader);
  - features in the workers (`collate_inputs`): what `atdr train` does for a model on the CPU;
- features alone, in the main process: batched kaldi128 / mel64 (`FrontEnd.batch`) vs torchaudio
  clip by clip; and on CUDA where present.

Each row gives clips/s (wall clock) and CPU milliseconds per clip, summed over the main process
and its data workers (Linux's /proc): the CPU time hardly depends on how busy the machine is, the
wall clock does. The goal line compares the packed path as CPU training runs it with the
original loader, by both.

    .venv/bin/python benchmarks/data_pipeline.py [--clips 200] [--seconds 10] [--format flac] [--workers 2]
        [--threads N] [--rounds 5] [--out CSV]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from functools import partial

import numpy as np
import soundfile as sf
import torch
import torchaudio
from torch.utils.data import DataLoader, Dataset

from atdr.config import AugmentConfig
from atdr.data.audio import as_float
from atdr.data.dataset import AudioDataset, collate
from atdr.data.features import get_frontend, pad_or_crop
from atdr.data.pack import PackedDataset
from atdr.data.pipeline import BatchPipeline, collate_inputs, collate_waves
from atdr.data.sampler import EpochSampler
from atdr.threads import set_torch_threads
from common import best_seconds_each, machine, synthetic_dataset, write_csv

AUGMENT = AugmentConfig(mixup=0.5, freqm=48, timem=192)  # the kaldi128 recipes (PSLA, AST fbank)
NORM = (-5.0, 4.0)
BATCH = 16
BASELINE = "original loader: per clip, torchaudio"
GOAL = "packed, features in the workers (cpu training)"


def torchaudio_kaldi128(wave: torch.Tensor) -> torch.Tensor:
    """The original loader's features of a clip `[1, samples]` whose mean it has removed."""
    return torchaudio.compliance.kaldi.fbank(wave, htk_compat=True, sample_frequency=16000, use_energy=False,
                                             window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)


class OriginalItems(Dataset):
    """The original loader's training items, step by step (see the module's doc)."""

    def __init__(self, clips: list, labels, target_length: int) -> None:
        self.clips, self.labels, self.target_length = clips, labels, target_length
        self.masks = (torchaudio.transforms.FrequencyMasking(AUGMENT.freqm),
                      torchaudio.transforms.TimeMasking(AUGMENT.timem))

    def __len__(self) -> int:
        return len(self.clips)

    def _read(self, index: int) -> tuple[torch.Tensor, np.ndarray]:
        wave = torch.from_numpy(sf.read(self.clips[index].wav, dtype="float32")[0])[None]
        return wave - wave.mean(), self.labels.encode(self.clips[index].labels)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        wave, target = self._read(key[0])
        if random.random() < AUGMENT.mixup:
            other, other_target = self._read(random.randint(0, len(self.clips) - 1))
            other = torch.nn.functional.pad(other[:, :wave.shape[1]], (0, max(wave.shape[1] - other.shape[1], 0)))
            lam = np.random.beta(AUGMENT.mixup_alpha, AUGMENT.mixup_alpha)
            wave = lam * wave + (1 - lam) * other
            wave, target = wave - wave.mean(), lam * target + (1 - lam) * other_target
        fbank = pad_or_crop(torchaudio_kaldi128(wave), self.target_length)
        fbank = self.masks[1](self.masks[0](fbank.T[None]))[0].T
        return (fbank - NORM[0]) / (2 * NORM[1]), torch.from_numpy(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--format", choices=["flac", "wav"], default="flac", help="the clips' files")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of every loader")
    parser.add_argument("--threads", type=int, help="torch threads of the main process (default: as `atdr train` "
                        "sets them, the CPUs less one per worker)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds, each row's best kept (other processes "
                        "only ever slow a round down)")
    parser.add_argument("--out", help="also write the numbers to this csv")
    args = parser.parse_args()
    set_torch_threads(args.threads, args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        clips, labels, store = synthetic_dataset(tmp, args.clips, args.seconds, args.format)
        n = len(clips)
        frames = {"kaldi128": round(args.seconds * 100), "mel64": round(args.seconds * 40)}
        kaldi, mel = get_frontend("kaldi128"), get_frontend("mel64")
        sampler = EpochSampler(n, seed=0)
        sampler.set_epoch(1)
        # Persistent workers: steady-state throughput, without the workers' start-up per pass.
        loader = partial(DataLoader, batch_size=BATCH, sampler=sampler, num_workers=args.workers,
                         persistent_workers=args.workers > 0)

        waves = [as_float(torch.from_numpy(store.read(i))) for i in range(n)]

        def packed(partner: str, in_workers: bool = False) -> tuple[DataLoader, BatchPipeline]:
            """The packed loader with mixup partners from the `dataset` or the `batch`, and its pipeline."""
            augment = AUGMENT.model_copy(update={"mixup_partner": partner})
            dataset = PackedDataset(store, clips, labels, mixup=augment)
            pipeline = BatchPipeline(kaldi, frames["kaldi128"], NORM, augment)
            collate = partial(collate_inputs, inputs=pipeline.train_inputs) if in_workers else collate_waves
            return loader(dataset, collate_fn=collate), pipeline

        def features_in_main(device: str):
            batches, pipeline = packed("dataset")
            return lambda: [pipeline.train_inputs(batch, torch.device(device)) for batch in batches]

        def batched(fe, device: str):
            on_device = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True).to(device)
            lengths = torch.tensor([len(w) for w in waves])
            return lambda: [fe.batch(chunk, chunk_lengths, frames[fe.name])
                            for chunk, chunk_lengths in zip(on_device.split(BATCH), lengths.split(BATCH))]

        loaders = {
            BASELINE: loader(OriginalItems(clips, labels, frames["kaldi128"])),
            "reference loader: per clip, atdr's front-end":
                loader(AudioDataset(clips, labels, kaldi, frames["kaldi128"], NORM, AUGMENT), collate_fn=collate),
            "packed, waveforms only, partners from the dataset": packed("dataset")[0],
            "packed, waveforms only, partners from the batch": packed("batch")[0],
            GOAL: packed("dataset", in_workers=True)[0],
            "packed, features in the workers, partners from the batch": packed("batch", in_workers=True)[0],
        }
        timings = best_seconds_each(repeats=args.rounds, fns={
            **{name: lambda batches=batches: list(batches) for name, batches in loaders.items()},
            "packed, features in the main process (cpu)": features_in_main("cpu"),
            "kaldi128 features, torchaudio per clip":
                lambda: [torchaudio_kaldi128((w - w.mean())[None]) for w in waves],
            "kaldi128 features, batched (cpu)": batched(kaldi, "cpu"),
            "mel64 features, batched (cpu)": batched(mel, "cpu"),
        })
        if torch.cuda.is_available():
            timings |= best_seconds_each(repeats=args.rounds, fns={
                "packed, features in the main process (cuda)": features_in_main("cuda"),
                "kaldi128 features, batched (cuda)": batched(kaldi, "cuda"),
                "mel64 features, batched (cuda)": batched(mel, "cuda"),
            }, sync=True)
        del loaders  # ends the persistent workers
    rate = {name: n / wall for name, (wall, _) in timings.items()}
    cpu = {name: 1000 * seconds / n for name, (_, seconds) in timings.items()}  # CPU ms per clip, all processes
    less_cpu = {name: cpu[BASELINE] / ms if ms else float("nan") for name, ms in cpu.items()}  # 0: under a tick
    print(f"{machine()}; {n} clips of {args.seconds:g} s ({args.format}), batches of {BATCH}, {args.workers} data "
          f"workers (1 torch thread each)")
    print(f"baseline: {BASELINE} (read, mixup {AUGMENT.mixup:g} with a partner from the dataset, kaldi128, masks "
          f"{AUGMENT.freqm}/{AUGMENT.timem}, normalise): {rate[BASELINE]:.0f} clips/s, {cpu[BASELINE]:.1f} CPU ms/clip")
    print(f"{'':58s} {'clips/s':>8s} {'x base':>7s} {'CPU ms/clip':>12s} {'x base':>7s}")
    for name in timings:
        print(f"{name:58s} {rate[name]:8.0f} {rate[name] / rate[BASELINE]:7.2f} {cpu[name]:12.2f} "
              f"{less_cpu[name]:7.2f}")
    print(f"goal: {GOAL} vs the original loader: {rate[GOAL] / rate[BASELINE]:.2f}x clips/s, "
          f"{less_cpu[GOAL]:.2f}x less CPU per clip (goal 3x)")
    write_csv(args.out, [{"measure": name, "clips_per_s": round(rate[name], 1),
                          "vs_baseline": round(rate[name] / rate[BASELINE], 3), "cpu_ms_per_clip": round(cpu[name], 2),
                          "cpu_vs_baseline": round(less_cpu[name], 3), "format": args.format,
                          "machine": machine()}
                         for name in timings])

if __name__ == "__main__":
    main()
