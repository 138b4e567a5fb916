"""Data pipeline throughput, as ratios against a baseline measured in the same run.

Baseline: reading a clip and computing its kaldi128 features with torchaudio, one clip at a time
(what the original loader's workers do per item). Compared, on the same clips:

- per-clip paths: the mel64 front-end, a reference training item (mixup 0.5 reads two clips;
  SpecAugment; normalisation), and the reference DataLoader with N workers;
- the fast path: the packed store read by a DataLoader with the same N workers (waveforms only:
  what the training loop waits for when features are computed on the GPU), and the same loader
  followed by `BatchPipeline.train` on the CPU in the main process (features and augmentation
  included: identical features, comparable with the reference loader);
- features alone: batched kaldi128 / mel64 (`FrontEnd.batch`) vs torchaudio clip by clip, and on
  CUDA where present.

Two goal lines compare like with like: the packed loader (with the batch pipeline on the CPU) vs
the reference loader, and batched vs per-clip kaldi128 features.

    .venv/bin/python benchmarks/data_pipeline.py [--clips 200] [--seconds 10] [--workers 2] [--threads N] [--out CSV]
"""

from __future__ import annotations

import argparse
import tempfile

import torch
import torchaudio
from torch.utils.data import DataLoader

from atdr.config import AugmentConfig
from atdr.data.audio import load_audio
from atdr.data.dataset import AudioDataset, collate
from atdr.data.features import get_frontend, pad_or_crop
from atdr.data.pack import PackedDataset
from atdr.data.pipeline import BatchPipeline, collate_waves
from atdr.data.sampler import EpochSampler
from common import best_seconds, machine, synthetic_dataset, write_csv

AUGMENT = AugmentConfig(mixup=0.5, freqm=48, timem=192)  # the kaldi128 recipes (PSLA, AST fbank)
NORM = (-5.0, 4.0)
BATCH = 16


def torchaudio_kaldi128(wave: torch.Tensor) -> torch.Tensor:
    """The original loader's features, straight from torchaudio."""
    return torchaudio.compliance.kaldi.fbank((wave - wave.mean())[None], htk_compat=True, sample_frequency=16000,
                                             use_energy=False, window_type="hanning", num_mel_bins=128, dither=0.0,
                                             frame_shift=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of both loaders")
    parser.add_argument("--threads", type=int, help="torch threads of the main process (default: torch's choice); "
                        "1 on a machine shared with other jobs, where waiting threads stall each other")
    parser.add_argument("--out", help="also write the numbers to this csv")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        clips, labels, store = synthetic_dataset(tmp, args.clips, args.seconds)
        n = len(clips)
        frames = {"kaldi128": round(args.seconds * 100), "mel64": round(args.seconds * 40)}
        kaldi, mel = get_frontend("kaldi128"), get_frontend("mel64")
        waves = [load_audio(c.wav) for c in clips]
        batch_waves = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
        lengths = torch.tensor([len(w) for w in waves])
        sampler = EpochSampler(n, seed=0)
        sampler.set_epoch(1)

        reference_set = AudioDataset(clips, labels, kaldi, frames["kaldi128"], NORM, AUGMENT)
        # Persistent workers: steady-state throughput, without the workers' start-up per pass.
        workers = dict(num_workers=args.workers, persistent_workers=args.workers > 0)
        reference_loader = DataLoader(reference_set, BATCH, sampler=sampler, collate_fn=collate, **workers)
        packed_loader = DataLoader(PackedDataset(store, clips, labels), BATCH, sampler=sampler,
                                   collate_fn=collate_waves, **workers)
        pipeline = BatchPipeline(kaldi, frames["kaldi128"], NORM, AUGMENT)

        def packed_training_batches(device: str) -> None:
            for batch in packed_loader:
                pipeline.train(batch.waves.to(device), batch.lengths, batch.targets.to(device), batch.generator())

        def batched(fe, device: str):
            on_device = batch_waves.to(device)
            return lambda: [fe.batch(chunk, chunk_lengths, frames[fe.name])
                            for chunk, chunk_lengths in zip(on_device.split(32), lengths.split(32))]

        timings = {  # name -> seconds for all clips
            "baseline": best_seconds(lambda: [pad_or_crop(torchaudio_kaldi128(load_audio(c.wav)), frames["kaldi128"])
                                              for c in clips]),
            "mel64 features, per clip": best_seconds(lambda: [pad_or_crop(mel(load_audio(c.wav)), frames["mel64"])
                                                              for c in clips]),
            "reference training item (mixup, SpecAugment)": best_seconds(lambda: [reference_set[i] for i in sampler]),
            f"reference DataLoader, {args.workers} workers": best_seconds(lambda: list(reference_loader)),
            f"packed DataLoader, {args.workers} workers, waveforms": best_seconds(lambda: list(packed_loader)),
            f"packed DataLoader, {args.workers} workers + BatchPipeline (cpu)":
                best_seconds(lambda: packed_training_batches("cpu")),
            "kaldi128 features, torchaudio per clip": best_seconds(lambda: [torchaudio_kaldi128(w) for w in waves]),
            "kaldi128 features, batched (cpu)": best_seconds(batched(kaldi, "cpu")),
            "mel64 features, batched (cpu)": best_seconds(batched(mel, "cpu")),
        }
        if torch.cuda.is_available():
            timings |= {
                f"packed DataLoader, {args.workers} workers + BatchPipeline (cuda)":
                    best_seconds(lambda: packed_training_batches("cuda"), sync=True),
                "kaldi128 features, batched (cuda)": best_seconds(batched(kaldi, "cuda"), sync=True),
                "mel64 features, batched (cuda)": best_seconds(batched(mel, "cuda"), sync=True),
            }
    rate = {name: n / seconds for name, seconds in timings.items()}
    goals = {
        "packed loader + BatchPipeline (cpu) vs reference loader":
            (f"packed DataLoader, {args.workers} workers + BatchPipeline (cpu)", f"reference DataLoader, {args.workers} workers"),
        "batched kaldi128 (cpu) vs torchaudio per clip": ("kaldi128 features, batched (cpu)", "kaldi128 features, torchaudio per clip"),
    }
    print(f"{machine()}; {n} clips of {args.seconds:g} s")
    print(f"baseline: read + kaldi128 features (torchaudio), one clip at a time: {rate['baseline']:.0f} clips/s")
    for name in timings:
        if name != "baseline":
            print(f"{name:58s} {rate[name] / rate['baseline']:6.2f}x baseline ({rate[name]:.0f} clips/s)")
    for goal, (fast, slow) in goals.items():
        print(f"{goal:58s} {rate[fast] / rate[slow]:6.2f}x")
    write_csv(args.out, [{"measure": name, "clips_per_s": round(rate[name], 1),
                          "vs_baseline": round(rate[name] / rate["baseline"], 3), "machine": machine()}
                         for name in timings])


if __name__ == "__main__":
    main()
