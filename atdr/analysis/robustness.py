"""Robustness: each model's score under waveform perturbations (`atdr probe`), and its relative
drop from the clean score, averaged over seeds."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from atdr.analysis.common import run_identity, write_figure, write_table
from atdr.data.perturb import KINDS
from atdr.errors import AtdrError

LEGEND = ("Score on the eval set at the best epoch (mean over seeds) under each perturbation of the waveform, and in "
          "brackets its change relative to the clean score; the clean row is the run's own evaluation.")


def read_probes(probes: list[str | Path]) -> pd.DataFrame:
    """Every row of every probe csv, with the run's model and seed."""
    frames = []
    for path in probes:
        try:
            frame = pd.read_csv(path, keep_default_na=False, dtype={"strength": str})
        except (OSError, ValueError) as e:
            raise AtdrError(f"cannot read probe results {path}: {e}") from None
        if "run" not in frame or frame.empty or frame["perturbation"].iloc[0] != "clean":
            raise AtdrError(f"{path}: not the output of `atdr probe` (no clean row first)")
        model, seed = run_identity(frame["run"].iloc[0])
        frames.append(frame.assign(model=model, seed=seed, order=range(len(frame))))
    if not frames:
        raise AtdrError("no probe results given")
    return pd.concat(frames, ignore_index=True)


def robustness_table(probes: list[str | Path]) -> pd.DataFrame:
    """One row per (model, condition): the main metric (`metric`: mAP, or acc for single-label
    sets), its `score` (mean over seeds) and its relative drop from the clean score."""
    rows = read_probes(probes)
    main = rows["main_metric"].iloc[0]
    table = (rows.groupby(["model", "perturbation", "strength", "label"], sort=False)
             .agg(order=("order", "first"), seeds=("seed", "size"), score=(main, "mean"))
             .reset_index().sort_values(["model", "order"], kind="stable"))
    clean = table[table["perturbation"] == "clean"].set_index("model")["score"]
    table["relative_drop"] = 1 - table["score"] / table["model"].map(clean)
    table.insert(5, "metric", main)
    return table.drop(columns="order").reset_index(drop=True)


def plot_robustness(table: pd.DataFrame) -> plt.Figure:
    """A panel per perturbation: the score at each strength (clean first), a line per model."""
    kinds = [k for k in dict.fromkeys(table["perturbation"]) if k != "clean"]
    models = list(dict.fromkeys(table["model"]))
    colors = dict(zip(models, sns.color_palette(n_colors=len(models))))
    columns = min(4, max(len(kinds), 1))
    rows = -(-max(len(kinds), 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3 * rows), sharey=True, squeeze=False)
    for ax, kind in zip(axes.flat, kinds):
        for model in models:
            mine = table[table["model"] == model]
            points = pd.concat([mine[mine["perturbation"] == "clean"], mine[mine["perturbation"] == kind]])
            ax.plot(range(len(points)), points["score"], marker="o", color=colors[model], label=model)
            ax.set_xticks(range(len(points)), points["label"], rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{kind.replace('_', ' ')}: {KINDS[kind][0]}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(kinds):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(table["metric"].iloc[0])
    axes.flat[0].legend(fontsize=8, title="model")
    fig.tight_layout()
    return fig


def robustness(probes: list[str | Path], out: str | Path) -> pd.DataFrame:
    """Write OUT/robustness.{csv,md} and OUT/robustness.png; return the table."""
    out = Path(out)
    table = robustness_table(probes)
    cells = table.assign(cell=[f"{s:.3f}" + ("" if p == "clean" else f" ({-d:+.1%})")
                               for s, d, p in zip(table["score"], table["relative_drop"], table["perturbation"])],
                         condition=[lab if p == "clean" else f"{p.replace('_', ' ')} {lab}"
                                    for p, lab in zip(table["perturbation"], table["label"])])
    shown = cells.pivot(index="condition", columns="model", values="cell")
    shown = shown.loc[list(dict.fromkeys(cells["condition"])), list(dict.fromkeys(cells["model"]))].reset_index()
    write_table(table, shown, out / "robustness", LEGEND)
    write_figure(plot_robustness(table), out / "robustness.png")
    return table
