"""Label quality: mAP against injected label noise, and per-class AP against per-class label quality.

A run trained on labels from `atdr label-noise` has `noise.json` (its rate and counts) and
`label_quality.csv` (per class, the share of its training labels that are true) beside its
training datafile; a run without them was trained on the labels as given (rate 0), whose
quality is known only from a label-quality file, e.g. AudioSet's published estimates.

A label-quality file is a csv with one row per class: the class as `mid` (e.g. /m/09x0r) or as
`label_id` (its index in AudioSet's class list, as AudioSet's `qa_true_counts.csv`), and the
quality as `quality` (a share) or as `num_true` of `num_rated` labels rated correct.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats

from atdr.analysis.common import (
    map_scores,
    mean_over_seeds,
    plot_map_against,
    read_all,
    read_json,
    run_identity,
    training_datafile,
    with_ci,
    write_figure,
    write_table,
)
from atdr.atomic import atomic_path
from atdr.data.labels import LabelSet, audioset_labels
from atdr.errors import AtdrError
from atdr.evaluate import load_predictions
from atdr.metrics import per_class_ap
from atdr.run import read_run

NOISE_LEGEND = ("mAP on the (clean) eval set at the best epoch, mean over seeds, with its bootstrap 95% CI over "
                "clips; noise rate r: a share r of the training labels dropped and as many wrong ones added "
                "(atdr label-noise); dropped, flipped: labels of the training set.")
QUALITY_LEGEND = ("Spearman rank correlation over classes between a model's per-class AP on the eval set (mean over "
                  "seeds) and the quality of its training labels for that class (the share of them that is true).")


def noise_of(run: str | Path) -> dict:
    """The label noise a run was trained with: noise.json beside its training datafile, or rate 0."""
    path = training_datafile(run).with_name("noise.json")
    return read_json(path) if path.is_file() else {"rate": 0.0}


def label_noise_table(runs: list[str | Path], bootstrap: int) -> pd.DataFrame:
    """One row per (model, noise rate): seeds, mAP and its CI, std over seeds, and the counts."""
    def read(run: Path) -> dict:
        model, seed = run_identity(run)
        noise = noise_of(run)
        return {"model": model, "seed": seed, "rate": noise["rate"], "dropped": noise.get("dropped", 0),
                "flipped": noise.get("flipped", 0), **map_scores(run, bootstrap)}

    seeds = read_all(runs, read)
    table = mean_over_seeds(seeds, ["model", "rate"])
    counts = seeds.groupby("rate")[["dropped", "flipped"]].first()
    return table.join(counts, on="rate").sort_values(["model", "rate"]).reset_index(drop=True)


def label_noise(runs: list[str | Path], out: str | Path, bootstrap: int = 1000) -> pd.DataFrame:
    """Write OUT/label_noise.{csv,md} and OUT/mAP_vs_label_noise.png; return the table."""
    out = Path(out)
    table = label_noise_table(runs, bootstrap)
    cells = table.assign(cell=with_ci(table), column=[f"rate {r:g}" for r in table["rate"]])
    shown = cells.pivot(index="model", columns="column", values="cell")
    shown = shown[list(dict.fromkeys(cells.sort_values("rate")["column"]))].fillna("").reset_index()
    write_table(table, shown, out / "label_noise", NOISE_LEGEND)
    write_figure(plot_map_against(table, "rate", "label noise rate (share of training labels wrong)"),
                 out / "mAP_vs_label_noise.png")
    return table


def read_label_quality(path: str | Path, labels: LabelSet) -> np.ndarray:
    """Per class of `labels`, its quality from a label-quality file (see the module docstring);
    NaN for classes the file does not rate."""
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (OSError, ValueError) as e:
        raise AtdrError(f"cannot read label-quality file {path}: {e}") from None
    if "mid" in frame:
        mids = frame["mid"].astype(str).str.strip()
    elif "label_id" in frame:
        audioset = audioset_labels()
        if not frame["label_id"].between(0, len(audioset) - 1).all():
            raise AtdrError(f"{path}: label_id must be an index into AudioSet's {len(audioset)} classes")
        mids = frame["label_id"].map(lambda i: audioset.mids[int(i)])
    else:
        raise AtdrError(f"{path}: expected a column mid or label_id (AudioSet's qa_true_counts.csv)")
    if "quality" in frame:
        quality = frame["quality"].astype(float)
    elif {"num_true", "num_rated"} <= set(frame):
        quality = frame["num_true"] / frame["num_rated"].where(frame["num_rated"] > 0)
    else:
        raise AtdrError(f"{path}: expected a column quality, or num_true and num_rated")
    by_mid = dict(zip(mids, quality))
    values = np.array([by_mid.get(mid, np.nan) for mid in labels.mids], dtype=float)
    if np.isnan(values).all():
        raise AtdrError(f"{path} rates none of the {len(labels)} classes of the runs")
    return values


def training_label_quality(run: str | Path, quality_file: str | Path | None) -> tuple[str, np.ndarray] | None:
    """(which labels, per-class quality) of a run's training labels: measured where atdr injected
    the noise, else from `quality_file`; None without either."""
    noise = noise_of(run)
    labels = read_run(run).labels
    if noise["rate"] > 0:
        return f"noise rate {noise['rate']:g}", read_label_quality(training_datafile(run).with_name("label_quality.csv"),
                                                                  labels)
    if quality_file is not None:
        return "as given", read_label_quality(quality_file, labels)
    return None


def per_class_quality(runs: list[str | Path], quality_file: str | Path | None) -> pd.DataFrame:
    """One row per (model, training labels, class) with a quality: AP (mean over seeds), quality."""
    frames = []
    for run in map(Path, runs):
        known = training_label_quality(run, quality_file)
        if known is None:
            continue
        model, seed = run_identity(run)
        ap = per_class_ap(load_predictions(run / "predictions.npy"), load_predictions(run / "targets.npy"))
        frames.append(pd.DataFrame({"model": model, "seed": seed, "labels": known[0], "mid": read_run(run).labels.mids,
                                    "AP": ap, "quality": known[1]}))
    if not frames:
        raise AtdrError("no run has a known label quality: give runs trained on `atdr label-noise` labels, or a "
                        "label-quality file for the others")
    classes = pd.concat(frames).dropna(subset=["AP", "quality"])
    return classes.groupby(["model", "labels", "mid"], sort=False).agg(AP=("AP", "mean"),
                                                                      quality=("quality", "first")).reset_index()


def correlations(classes: pd.DataFrame) -> pd.DataFrame:
    """Per (model, training labels): classes, Spearman's rho between AP and quality, its p-value."""
    rows = []
    for (model, labels), group in classes.groupby(["model", "labels"], sort=False):
        rho, p = stats.spearmanr(group["quality"], group["AP"]) if len(group) > 2 else (np.nan, np.nan)
        rows.append({"model": model, "labels": labels, "classes": len(group), "spearman_rho": rho, "p_value": p})
    return pd.DataFrame(rows)


def plot_label_quality(classes: pd.DataFrame, rhos: pd.DataFrame) -> plt.Figure:
    """Per-class AP against label quality: a panel per training labels, a colour per model, rho in the legend."""
    panels = list(dict.fromkeys(classes["labels"]))
    models = list(dict.fromkeys(classes["model"]))
    colors = dict(zip(models, sns.color_palette(n_colors=len(models))))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), sharey=True, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for model in models:
            rows = classes[(classes["labels"] == panel) & (classes["model"] == model)]
            rho = rhos[(rhos["labels"] == panel) & (rhos["model"] == model)]["spearman_rho"]
            if len(rows):
                ax.scatter(rows["quality"], rows["AP"], s=18, alpha=0.8, color=colors[model],
                           label=f"{model} (ρ = {rho.iloc[0]:.2f})")
        ax.set_title(f"training labels: {panel}")
        ax.set_xlabel("label quality (share of the class's labels true)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("per-class AP (eval)")
    fig.tight_layout()
    return fig


def label_quality(runs: list[str | Path], out: str | Path, quality_file: str | Path | None = None) -> pd.DataFrame:
    """Write OUT/label_quality.{csv,md} (the correlations), OUT/per_class_label_quality.csv and
    OUT/per_class_ap_vs_label_quality.png; return the correlations."""
    out = Path(out)
    classes = per_class_quality(runs, quality_file)
    rhos = correlations(classes)
    with atomic_path(out / "per_class_label_quality.csv") as tmp:
        classes.to_csv(tmp, index=False)
    shown = rhos.assign(spearman_rho=rhos["spearman_rho"].map("{:.3f}".format), p_value=rhos["p_value"].map("{:.3g}".format))
    write_table(rhos, shown, out / "label_quality", QUALITY_LEGEND)
    write_figure(plot_label_quality(classes, rhos), out / "per_class_ap_vs_label_quality.png")
    return rhos
