"""Probe a trained run's robustness: its best checkpoint on its eval set under waveform perturbations.

No retraining: each clip of the run's eval set is perturbed after reading, before the features,
then scored as `atdr train` scored it (the same data path, features, normalisation and batches;
fp32). The first row, clean, reproduces the run's eval mAP (the log says so). Perturbations, each
at one or more strengths, applied in this order:

  --white-noise DB    white noise at this SNR (dB, over the clip)
  --babble DB         the sum of 4 other eval clips at this SNR
  --gain DB           louder or quieter, clipped to [-1, 1]
  --lowpass HZ        nothing above this frequency
  --bandpass LOW-HIGH nothing outside this band (the telephone band: 300-3400)
  --shift S           circular shift by S seconds
  --truncate SHARE    only the first SHARE of the clip (0.5: the first half)
  --resample HZ       down to this sample rate and back

Writes OUT (csv): per condition, the perturbation, its strength, mAP, mAUC, d-prime, accuracy,
clips and seconds; `atdr analyze robustness` compares runs.

Example:
  atdr probe results/synth/crnn/seed0 --white-noise 20 10 0 --babble 10 --gain -20 --lowpass 1000 \\
      --bandpass 300-3400 --shift 0.5 --truncate 0.5 --resample 8000 --out probe.csv
"""

import argparse
import logging

log = logging.getLogger(__name__)

OPTIONS = {  # option: (perturbation kind, strength type, metavar)
    "--white-noise": ("white_noise", float, "DB"),
    "--babble": ("babble", float, "DB"),
    "--gain": ("gain", float, "DB"),
    "--lowpass": ("lowpass", float, "HZ"),
    "--bandpass": ("bandpass", str, "LOW-HIGH"),
    "--shift": ("shift", float, "S"),
    "--truncate": ("truncate", float, "SHARE"),
    "--resample": ("resample", int, "HZ"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder (from atdr train)")
    for option, (kind, kind_type, metavar) in OPTIONS.items():
        p.add_argument(option, dest=kind, type=kind_type, nargs="+", default=[], metavar=metavar,
                       help=f"{kind.replace('_', ' ')} at these strengths")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and of the babble's clips (default: %(default)s)")
    p.add_argument("--workers", type=int, default=0, help="data loading processes (default: %(default)s)")
    p.add_argument("--gpus", type=int, default=1, choices=[0, 1],
                   help="1: a free GPU where there is one, claimed as by atdr train; 0: the CPU (default: %(default)s)")
    p.add_argument("--out", required=True, metavar="CSV", help="the scores per condition")


def run(args: argparse.Namespace) -> None:
    from atdr.atomic import atomic_path
    from atdr.data.perturb import Perturbation, parse_band
    from atdr.gpus import claim_device
    from atdr.probe import probe

    perturbations = [Perturbation(kind, parse_band(s) if kind == "bandpass" else s, args.seed)
                     for kind, *_ in OPTIONS.values() for s in getattr(args, kind)]
    table = probe(args.run, perturbations, args.workers, claim_device(args.gpus))
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    log.info("wrote %s (%d conditions)", args.out, len(table))
