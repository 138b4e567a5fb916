"""List the registered models: front-end, output, parameters and GFLOPs per 10 s clip.

Sizes are for each model's paper recipe (config/paper.yaml: the default hyper-parameters but for
those in the "paper recipe" column; -: no recipe there, the defaults) and 527 classes, at the
recipe's front-end (kaldi128: 128 x 1024 frames, mel64: 64 x 400 frames). GFLOPs count 2 per
multiply-add, as torch's FlopCounterMode (FFTs and elementwise ops not included).

Example:
  atdr models
"""

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> None:
    from atdr.models import complexity, list_specs, without_pretraining

    rows = [("name", "family", "front-end", "output", "params (M)", "GFLOPs", "paper recipe", "description")]
    for spec in list_specs():
        c = complexity(spec.name, **without_pretraining(spec.paper or {}))  # pretrained or not: the same network
        names = ", ".join((spec.name, *spec.aliases))
        recipe = "-" if spec.paper is None else ", ".join(f"{k}={v}" for k, v in spec.paper.items()) or "defaults"
        rows.append((names, spec.family, spec.frontend, spec.output, f"{c.params / 1e6:.1f}", f"{c.gflops:.1f}",
                     recipe, spec.description))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    right = {4, 5}  # numbers
    for row in rows:
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        print("  ".join(cells + [row[-1]]))
