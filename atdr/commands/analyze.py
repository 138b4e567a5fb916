"""Tables and figures of the paper's analyses, from finished runs.

  data-efficiency  mAP against the number of training clips, with bootstrap 95% CIs: runs of
                   a model on nested subsets (`atdr subset`) and on the whole set.
                   OUT/data_efficiency.{csv,md,png}
  label-noise      mAP against the label noise rate: runs on `atdr label-noise` labels and on
                   the labels as given (rate 0). OUT/label_noise.{csv,md}, OUT/mAP_vs_label_noise.png
  label-quality    per-class AP against the per-class quality of the training labels, with a
                   Spearman rank correlation per model: measured for runs on `atdr label-noise`
                   labels, from --quality (e.g. AudioSet's qa_true_counts.csv) for the others.
                   OUT/label_quality.{csv,md}, OUT/per_class_label_quality.csv,
                   OUT/per_class_ap_vs_label_quality.png
  robustness       each model's score under the perturbations of `atdr probe`, and its relative
                   drop. OUT/robustness.{csv,md,png}

A run is any run folder .../MODEL/seedN; runs of one model (the folder name) are averaged over
seeds. What a run was trained on is read from its own files.

Examples:
  atdr analyze data-efficiency results/synth/crnn/seed0 results/synth/analysis/data_efficiency/*/crnn/seed0 \\
      --out results/synth/analysis/data_efficiency
  atdr analyze label-quality results/audioset/*/seed0 --quality qa_true_counts.csv --out quality
  atdr analyze robustness results/synth/analysis/robustness/*/seed0/probe.csv --out results/synth/analysis/robustness
"""

import argparse
import logging

log = logging.getLogger(__name__)

KINDS = ("data-efficiency", "label-noise", "label-quality", "robustness")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=KINDS, help="which analysis")
    p.add_argument("inputs", nargs="+", metavar="RUN|CSV", help="run folders (robustness: csv files of atdr probe)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for the mAP CIs; 0 = none (default: %(default)s)")
    p.add_argument("--quality", metavar="CSV", help="label-quality: per-class quality of the labels as given")


def run(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from atdr.errors import AtdrError

    if args.quality and args.kind != "label-quality":
        raise AtdrError("--quality belongs to label-quality")
    if args.kind == "data-efficiency":
        from atdr.analysis.efficiency import data_efficiency

        data_efficiency(args.inputs, args.out, args.bootstrap)
    elif args.kind == "label-noise":
        from atdr.analysis.labels import label_noise

        label_noise(args.inputs, args.out, args.bootstrap)
    elif args.kind == "label-quality":
        from atdr.analysis.labels import label_quality

        label_quality(args.inputs, args.out, args.quality)
    else:
        from atdr.analysis.robustness import robustness

        robustness(args.inputs, args.out)
    log.info("%s: wrote %s", args.kind, args.out)
