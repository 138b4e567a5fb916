"""Training sets with label noise injected at given rates, for the label-quality analysis.

At rate r, round(r * P) of the P positive labels (clip, class) are dropped and as many negatives
are flipped to positive, drawn at random with the seed (each clip keeps one label): a share r of
the labels given is then wrong. For each rate: OUT/<rate>/train.json (the noisy labels),
train_weight.csv (sampling weights from them, as `atdr weights`), noise.json (the rate, the
seed and the counts: positives, dropped, flipped) and label_quality.csv (per class: labels
given, of which true, and their share, the quality). The eval set is never touched.

Example:
  atdr label-noise results/synth/data/train.json --labels results/synth/download/class_labels_indices.csv \\
      --rates 0.2 0.4 --seed 0 --out results/synth/analysis/label_noise
"""

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("datafile", help="training datafile (json)")
    p.add_argument("--labels", required=True, metavar="CSV", help="class_labels_indices.csv")
    p.add_argument("--rates", required=True, type=float, nargs="+", metavar="R",
                   help="noise rates: the share of the labels dropped, and flipped in (each in [0, 1))")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for <rate>/train.json and the counts")


def run(args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    import pandas as pd

    from atdr.analysis import variant_name
    from atdr.atomic import atomic_path, write_text
    from atdr.data.datafile import read_datafile, write_datafile
    from atdr.data.label_noise import inject_label_noise
    from atdr.data.labels import LabelSet
    from atdr.data.weights import sample_weights, write_weights

    labels = LabelSet.read(args.labels)
    clips = read_datafile(args.datafile, labels)
    for rate in args.rates:
        noisy = inject_label_noise(clips, labels, rate, args.seed)
        folder = Path(args.out) / variant_name(rate)
        write_datafile(folder / "train.json", noisy.clips)
        write_weights(folder / "train_weight.csv", sample_weights(noisy.clips, labels))
        counts = {"rate": rate, "seed": args.seed, "clips": len(clips), "positives": noisy.positives,
                  "dropped": noisy.dropped, "flipped": noisy.flipped}
        write_text(folder / "noise.json", json.dumps(counts, indent=2) + "\n")
        quality = pd.DataFrame({"mid": labels.mids, "display_name": labels.names, "given": noisy.given,
                                "correct": noisy.correct, "quality": noisy.quality})
        with atomic_path(folder / "label_quality.csv") as tmp:
            quality.to_csv(tmp, index=False)
        log.info("%s: rate %g: %d of %d labels dropped, %d flipped in", folder / "train.json", rate, noisy.dropped,
                 noisy.positives, noisy.flipped)
