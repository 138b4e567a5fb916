"""Data pipeline throughput, as ratios against a baseline measured in the same run.

Baseline: reading a clip and computing its kaldi128 features, one clip at a time (what a
DataLoader worker does per item). Compared: the mel64 front-end, a full training item with the
recipes' augmentation (mixup 0.5 reads two clips; SpecAugment; normalisation), and a DataLoader
with 2 workers. The future fast data path (packed waveforms, batched features on the device)
will be measured against the same baseline.

    .venv/bin/python benchmarks/data_pipeline.py [--clips 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from torch.utils.data import DataLoader

from atdr.data.audio import load_audio
from atdr.config import AugmentConfig
from atdr.data.dataset import AudioDataset, collate
from atdr.data.datafile import read_datafile
from atdr.data.features import get_frontend, pad_or_crop
from atdr.data.labels import LabelSet
from atdr.data.sampler import EpochSampler
from atdr.data.synth import synthesize


def clips_per_second(fn, n: int) -> float:
    """Clips per second of `fn` (which processes `n` clips), after one untimed warm-up pass."""
    fn()
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(tmp, n_train=args.clips, n_eval=1, seconds=args.seconds, progress=False)
        labels = LabelSet.read(Path(tmp) / "class_labels_indices.csv")
        clips = read_datafile(Path(tmp) / "train.json", labels)
        frames = {"kaldi128": round(args.seconds * 100), "mel64": round(args.seconds * 40)}

        def features(name: str):
            fe = get_frontend(name)
            return lambda: [pad_or_crop(fe(load_audio(c.wav)), frames[name]) for c in clips]

        train_set = AudioDataset(clips, labels, get_frontend("kaldi128"), frames["kaldi128"], (-5.0, 4.0),
                                 AugmentConfig(mixup=0.5, freqm=48, timem=192))
        sampler = EpochSampler(len(clips), seed=0)
        sampler.set_epoch(1)
        loader = DataLoader(train_set, 16, sampler=sampler, num_workers=2, collate_fn=collate)

        baseline = clips_per_second(features("kaldi128"), len(clips))
        rows = {
            "mel64 features": clips_per_second(features("mel64"), len(clips)),
            "training item (mixup 0.5, SpecAugment)": clips_per_second(lambda: [train_set[i] for i in sampler], len(clips)),
            "DataLoader, 2 workers, training items": clips_per_second(lambda: list(loader), len(clips)),
        }
    print(f"baseline: read + kaldi128 features, {args.seconds:g} s clips: {baseline:.0f} clips/s")
    for name, rate in rows.items():
        print(f"{name:42s} {rate / baseline:5.2f}x baseline ({rate:.0f} clips/s)")


if __name__ == "__main__":
    main()
