"""What the analyses share: reading a run's identity, scores and training set, averaging over
seeds, writing a table (csv and markdown) and the figure of mAP against one quantity."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from atdr.atomic import atomic_path, write_text
from atdr.errors import AtdrError
from atdr.evaluate import load_predictions, score
from atdr.report import save_figure
from atdr.run import read_run

SEED_FOLDER = "seedN"


def run_identity(path: str | Path) -> tuple[str, int]:
    """`.../MODEL/seedN` -> (model, seed): an ordinary run or an analysis' run."""
    path = Path(path)
    if not path.name.startswith("seed") or not path.name[4:].isdigit():
        raise AtdrError(f"{path}: expected a run folder .../MODEL/{SEED_FOLDER}")
    return path.parent.name, int(path.name[4:])


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AtdrError(f"{path} not found" + ("; is the run finished?" if path.name == "summary.json" else "")) from None
    except (OSError, ValueError) as e:
        raise AtdrError(f"cannot read {path}: {e}") from None


def training_datafile(run: str | Path) -> Path:
    """The training datafile a run was trained on (its config's `data.train`)."""
    return Path(read_run(run).config.data.train)


def map_scores(run: str | Path, bootstrap: int) -> dict:
    """The run's eval mAP at its best epoch (predictions.npy) with its bootstrap 95% CI, as
    `atdr evaluate` computes it."""
    run = Path(run)
    metrics = score(load_predictions(run / "predictions.npy"), load_predictions(run / "targets.npy"), bootstrap)
    low, high = metrics.get("mAP_ci95", (math.nan, math.nan))
    return {"mAP": metrics["mAP"], "mAP_ci_low": low, "mAP_ci_high": high}


def mean_over_seeds(seeds: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """One row per `by` group: seeds, the mean mAP and CI bounds, the std of mAP over seeds."""
    return (seeds.groupby(by, sort=False)
            .agg(seeds=("seed", "size"), mAP=("mAP", "mean"), mAP_ci_low=("mAP_ci_low", "mean"),
                 mAP_ci_high=("mAP_ci_high", "mean"), mAP_std=("mAP", "std"))
            .reset_index())


def with_ci(table: pd.DataFrame) -> pd.Series:
    """mAP with its CI as text: "0.512 [0.471, 0.550]"."""
    return pd.Series([f"{m:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if pd.notna(lo) else "")
                      for m, lo, hi in zip(table["mAP"], table["mAP_ci_low"], table["mAP_ci_high"])], index=table.index)


def write_table(table: pd.DataFrame, shown: pd.DataFrame, out: Path, legend: str) -> None:
    """`out`.csv (every column, full precision) and `out`.md (`shown`, then the legend)."""
    with atomic_path(out.with_suffix(".csv")) as tmp:
        table.to_csv(tmp, index=False)
    markdown = shown.to_markdown(index=False, disable_numparse=True)
    write_text(out.with_suffix(".md"), f"{markdown}\n\n{legend}\n")


def write_figure(fig: plt.Figure, path: Path) -> None:
    save_figure(fig, path)
    plt.close(fig)


def plot_map_against(table: pd.DataFrame, x: str, xlabel: str, log_x: bool = False) -> plt.Figure:
    """mAP (mean over seeds) against `x`, a line per model, the 95% CIs as error bars."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    models = list(dict.fromkeys(table["model"]))
    for model, color in zip(models, sns.color_palette(n_colors=len(models))):
        rows = table[table["model"] == model].sort_values(x)
        errors = np.abs(np.stack([rows["mAP"] - rows["mAP_ci_low"], rows["mAP_ci_high"] - rows["mAP"]]))
        ax.errorbar(rows[x], rows["mAP"], yerr=None if np.isnan(errors).all() else errors, marker="o", capsize=3,
                    color=color, label=model)
    if log_x:
        ax.set_xscale("log")
        ticks = sorted(table[x].unique())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mAP (95% CI)")
    ax.legend(title="model")
    ax.grid(alpha=0.3)
    return fig


def read_all(paths: Iterable[str | Path], read) -> pd.DataFrame:
    """`read(path)` (a row, as a dict) of every path, as a frame; an error without any."""
    rows = [read(Path(p)) for p in paths]
    if not rows:
        raise AtdrError("no runs given")
    return pd.DataFrame(rows)
