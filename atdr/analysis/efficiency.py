"""Data efficiency: mAP against the number of training clips.

The runs are a model trained on nested, stratified subsets of the training set (`atdr subset`)
and on all of it (the ordinary run). The x axis is the number of clips each run actually trained
on (its summary.json); the fraction is that over the model's largest run. Every run keeps the
recipe (epochs, schedule), so a smaller set is also fewer optimiser steps, as for anyone who has
less data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from atdr.analysis.common import (
    map_scores,
    mean_over_seeds,
    plot_map_against,
    read_all,
    read_json,
    run_identity,
    with_ci,
    write_figure,
    write_table,
)

LEGEND = ("mAP on the eval set at the best epoch, mean over seeds, with its bootstrap 95% CI over clips (mean of "
          "the seeds' bounds); clips: training clips used (share of the model's full training set).")


def efficiency_table(runs: list[str | Path], bootstrap: int) -> pd.DataFrame:
    """One row per (model, training clips): fraction, seeds, mAP and its CI, std over seeds."""
    def read(run: Path) -> dict:
        model, seed = run_identity(run)
        clips = read_json(run / "summary.json")["clips"]["train"]
        return {"model": model, "seed": seed, "train_clips": clips, **map_scores(run, bootstrap)}

    table = mean_over_seeds(read_all(runs, read), ["model", "train_clips"]).sort_values(["model", "train_clips"])
    table.insert(2, "fraction", table["train_clips"] / table.groupby("model")["train_clips"].transform("max"))
    return table.reset_index(drop=True)


def data_efficiency(runs: list[str | Path], out: str | Path, bootstrap: int = 1000) -> pd.DataFrame:
    """Write OUT/data_efficiency.{csv,md,png}; return the table."""
    out = Path(out)
    table = efficiency_table(runs, bootstrap)
    cells = table.assign(cell=with_ci(table), column=[f"{c} clips ({f:.0%})" for c, f in zip(table["train_clips"],
                                                                                            table["fraction"])])
    shown = cells.pivot(index="model", columns="column", values="cell")
    shown = shown[list(dict.fromkeys(cells.sort_values("train_clips")["column"]))].fillna("").reset_index()
    write_table(table, shown, out / "data_efficiency", LEGEND)
    write_figure(plot_map_against(table, "train_clips", "training clips (log scale)", log_x=True),
                 out / "data_efficiency.png")
    return table
