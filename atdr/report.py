"""The comparison report: one table of every model and cross-model ensemble, and its figures.

Inputs follow the workflow's layout, which names what they are:
- a run `results/DATASET/MODEL/seedN` (from `atdr train`, then `atdr evaluate RUN`): metrics
  from `eval/metrics.json`, parameters, device and training time from `summary.json`, the
  architecture, front-end and input size from `config.yaml`, curves from `metrics.csv`;
- an ensemble `results/DATASET/ensembles/NAME/seedN` (from `atdr ensemble RUN... --out DIR`):
  `metrics.json` and `per_class_ensemble.csv`.

The table has one row per (dataset, model) over its seeds, the models of a dataset by mAP, then
its ensembles: metrics are means over seeds, the mAP 95% CI is the mean of the seeds' bootstrap
bounds and `mAP_std` the std over seeds (ddof 1); `train_clips`, `valid_clips` and `eval_clips`
are the clips a run actually used (those it could not read are listed in its summary.json).
`train_hours` is the mean training time of one seed in device-hours: wall time times the number
of GPUs for `device` "cuda" (GPU-hours), wall time on the CPU otherwise.

Cross-validation: datasets named `<name>_fold<k>` (the workflow's `folds`) are the folds of one
dataset `<name>`, reported as one row. Per seed, as the original's get_esc_result.py: where the
best epoch was chosen on the evaluated fold itself, the epoch is chosen once for all folds, the
one whose main metric averaged over the folds is best, and every metric is the mean over the
folds at that epoch (a fold's own best epoch would be optimistic); where a validation split chose
it, the mean of the folds' results. `fold_std` is the std over folds (ddof 1) of the main metric,
`folds` their number, `train_hours` the time of all folds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from atdr.atomic import atomic_path, write_text
from atdr.errors import AtdrError

RUN_LAYOUT = "results/DATASET/MODEL/seedN"
ENSEMBLE_LAYOUT = "results/DATASET/ensembles/NAME/seedN"
_SEED = re.compile(r"seed(\d+)")
DPI = 150
TOP_CLASSES = 10  # per-class figure: this many best and worst classes of the best model

# Columns of table.csv, in order.
COLUMNS = [
    "dataset", "model", "architecture", "frontend", "target_length", "params", "gflops", "seeds", "folds",
    "main_metric", "selected_on", "train_clips", "valid_clips", "eval_clips", "mAP", "mAP_ci_low", "mAP_ci_high",
    "mAP_std", "mAUC", "d_prime", "acc", "fold_std", "ensemble_mAP", "wa_mAP", "train_hours", "device",
]  # fmt: skip
_CLIPS = ["train_clips", "valid_clips", "eval_clips"]
# Equal over the seeds of a model (checked).
_CONFIG = ["architecture", "frontend", "target_length", "model_params", "label_dim", "main_metric", "selected_on",
           "params"]
_MEANS = ["mAP", "mAP_ci_low", "mAP_ci_high", "mAUC", "d_prime", "acc", "ensemble_mAP", "wa_mAP",
          "train_hours"]  # fmt: skip


# Reading the inputs


def parse_run_path(path: str | Path) -> tuple[str, str, int]:
    """`.../DATASET/MODEL/seedN` -> (dataset, model, seed)."""
    parts = Path(path).absolute().parts
    if len(parts) < 4 or not _SEED.fullmatch(parts[-1]) or "ensembles" in parts[-3:-1]:
        raise AtdrError(f"{path}: expected a run folder {RUN_LAYOUT} (ensembles go after --ensembles)")
    return parts[-3], parts[-2], int(parts[-1][4:])


def parse_ensemble_path(path: str | Path) -> tuple[str, str, int]:
    """`.../DATASET/ensembles/NAME/seedN` -> (dataset, name, seed)."""
    parts = Path(path).absolute().parts
    if len(parts) < 5 or not _SEED.fullmatch(parts[-1]) or parts[-3] != "ensembles":
        raise AtdrError(f"{path}: expected an ensemble folder {ENSEMBLE_LAYOUT}")
    return parts[-4], parts[-2], int(parts[-1][4:])


def _read_json(path: Path, hint: str) -> dict:
    if not path.is_file():
        raise AtdrError(f"{path.parent}: no {path.name}; {hint}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AtdrError(f"cannot read {path}: {e}") from None


def _scores(metrics: dict, section: str, path: Path) -> dict:
    """mAP, its CI bounds (NaN without bootstrap), mAUC, d-prime and accuracy of one section."""
    if section not in metrics:
        raise AtdrError(f"{path}: no section {section!r}")
    m = metrics[section]
    low, high = m.get("mAP_ci95", (math.nan, math.nan))
    return {"mAP": m["mAP"], "mAP_ci_low": low, "mAP_ci_high": high, "mAUC": m["mAUC"], "d_prime": m["d_prime"],
            "acc": m["acc"]}


def split_fold(dataset: str) -> tuple[str, int]:
    """`esc50_fold3` -> ("esc50", 3); a dataset that is not a fold -> (dataset, 0)."""
    from atdr.workflow import FOLD

    match = FOLD.match(dataset)
    return (match["base"], int(match["fold"])) if match else (dataset, 0)


def read_run_seed(path: str | Path) -> dict:
    """One row of the per-seed frame for a run folder."""
    from atdr.run import read_run

    path = Path(path)
    dataset, model, seed = parse_run_path(path)
    dataset, fold = split_fold(dataset)
    summary = _read_json(path / "summary.json", "is the run finished? (atdr train writes it at the end)")
    metrics = _read_json(path / "eval" / "metrics.json", f"run `atdr evaluate {path}` first")
    config = read_run(path).config
    clips = summary.get("clips", {})
    return {
        "dataset": dataset, "model": model, "seed": seed, "fold": fold, "path": str(path),
        "architecture": config.model.name, "frontend": config.data.frontend,
        "target_length": config.data.target_length, "model_params": json.dumps(config.model.params, sort_keys=True),
        "label_dim": len(pd.read_csv(path / "eval" / "per_class_best.csv")), "main_metric": summary["main_metric"],
        "selected_on": summary["selected_on"], **{f"{k}_clips": clips.get(k, math.nan) for k in ("train", "valid", "eval")},
        "params": summary["params"], "device": summary["device"], "train_hours": summary["train_seconds"] * max(summary.get("gpus", 0), 1) / 3600,
        **_scores(metrics, "best", path / "eval" / "metrics.json"),
        "ensemble_mAP": metrics.get("ensemble", {}).get("mAP", math.nan),
        "wa_mAP": metrics.get("wa", {}).get("mAP", math.nan),
        "per_class": str(path / "eval" / "per_class_best.csv"), "curves": str(path / "metrics.csv"),
    }  # fmt: skip


def read_ensemble_seed(path: str | Path) -> dict:
    """One row of the per-seed frame for a cross-model ensemble folder."""
    path = Path(path)
    dataset, name, seed = parse_ensemble_path(path)
    dataset, fold = split_fold(dataset)
    metrics = _read_json(path / "metrics.json", f"create it with `atdr ensemble RUN... --out {path}`")
    targets = path / "targets.npy"
    eval_clips = len(np.load(targets, mmap_mode="r")) if targets.is_file() else math.nan
    return {"dataset": dataset, "model": name, "seed": seed, "fold": fold, "path": str(path), "architecture": "ensemble",
            "eval_clips": eval_clips,
            **_scores(metrics, "ensemble", path / "metrics.json"), "per_class": str(path / "per_class_ensemble.csv")}


def read_seeds(runs: Iterable[str | Path], ensembles: Iterable[str | Path] = ()) -> pd.DataFrame:
    """One row per run or ensemble folder (a seed), with its metrics and where its other files are."""
    runs = list(runs)
    if not runs:
        raise AtdrError(f"no runs given: pass run folders {RUN_LAYOUT} with --runs")
    seeds = pd.DataFrame([read_run_seed(p) for p in runs] + [read_ensemble_seed(p) for p in ensembles])
    twice = seeds[seeds.duplicated(["dataset", "model", "seed", "fold"])]
    if len(twice):
        first = twice.iloc[0]
        raise AtdrError(f"{first.path}: {first.dataset}/{first.model} seed {first.seed} is given twice")
    return seeds


# The table


def _check_seeds_agree(seeds: pd.DataFrame) -> None:
    """The seeds of one (dataset, model) must describe the same model, or their mean means nothing."""
    runs = seeds[seeds["architecture"] != "ensemble"]
    differing = runs.groupby(["dataset", "model"])[_CONFIG].nunique(dropna=False).gt(1)
    differing = differing[differing.any(axis=1)]
    if len(differing):
        (dataset, model), row = next(differing.iterrows())
        raise AtdrError(f"the seeds of {dataset}/{model} differ in {', '.join(row.index[row])}: "
                        "give each configuration its own model folder")


def _gflops(row: pd.Series) -> float:
    """GFLOPs of one clip at the run's input size (NaN for an ensemble)."""
    from atdr.data.features import get_frontend
    from atdr.models import complexity, without_pretraining

    if row["architecture"] == "ensemble":
        return math.nan
    params = without_pretraining(json.loads(row["model_params"]))
    n_mels = get_frontend(row["frontend"]).n_mels
    return complexity(row["architecture"], label_dim=int(row["label_dim"]), n_mels=n_mels,
                      target_length=int(row["target_length"]), **params).gflops


def _devices(values: pd.Series) -> str | float:
    """The seeds' devices ("cpu", "cuda" or "cpu/cuda"); NaN for an ensemble."""
    return "/".join(sorted(values.dropna().unique())) or math.nan


_FOLD_METRICS = ["mAP", "mAUC", "d_prime", "acc"]


def _cross_validated(folds: pd.DataFrame, main: str) -> dict:
    """The folds of one (dataset, model, seed) as one row (see the module docstring)."""
    row = folds.iloc[0].to_dict()
    if row["architecture"] != "ensemble" and row["selected_on"] == "eval":
        curves = pd.concat(pd.read_csv(f).assign(fold=k) for f, k in zip(folds["curves"], folds["fold"]))
        epochs = curves.pivot(index="epoch", columns="fold", values=main).dropna()  # epochs every fold ran
        at = curves[curves["epoch"] == epochs.mean(axis=1).idxmax()]
        values = {c: at[c].to_numpy() for c in _FOLD_METRICS}
    else:
        values = {c: folds[c].to_numpy() for c in _FOLD_METRICS}
    row.update({c: float(np.mean(v)) for c, v in values.items()})
    row.update(fold=0, folds=len(folds), fold_std=float(np.std(values[main], ddof=1)) if len(folds) > 1 else math.nan,
               mAP_ci_low=math.nan, mAP_ci_high=math.nan, train_hours=folds["train_hours"].sum(min_count=1),
               ensemble_mAP=folds["ensemble_mAP"].mean(), wa_mAP=folds["wa_mAP"].mean(),
               device=_devices(folds["device"]), eval_clips=folds["eval_clips"].sum(min_count=1),
               **{c: round(folds[c].mean()) if folds[c].notna().any() else math.nan
                  for c in ("train_clips", "valid_clips")})
    return row


def aggregate_folds(seeds: pd.DataFrame) -> pd.DataFrame:
    """The per-seed frame with the folds of each cross-validated (dataset, model, seed) as one row."""
    seeds = seeds.assign(folds=1, fold_std=math.nan)
    metric_of = seeds.dropna(subset="main_metric").groupby("dataset")["main_metric"].first()  # ensembles: their runs'
    cv = [_cross_validated(group, metric_of.get(dataset, "mAP"))
          for (dataset, _, _), group in seeds[seeds["fold"] > 0].groupby(["dataset", "model", "seed"])]
    plain = seeds[seeds["fold"] == 0]
    return pd.concat([plain, pd.DataFrame(cv)], ignore_index=True) if cv else plain


def comparison_table(seeds: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model) with the COLUMNS, sorted by dataset, then mAP best first."""
    _check_seeds_agree(seeds)
    seeds = aggregate_folds(seeds)
    table = (
        seeds.groupby(["dataset", "model"], sort=False)
        .agg(**{c: (c, "first") for c in _CONFIG + _CLIPS}, seeds=("seed", "size"), folds=("folds", "first"),
             **{c: (c, "mean") for c in _MEANS}, mAP_std=("mAP", "std"), fold_std=("fold_std", "mean"),
             device=("device", _devices))
        .reset_index()
    )
    # An ensemble is scored like the runs of its dataset.
    metric_of = table.dropna(subset="main_metric").groupby("dataset")["main_metric"].first()
    table["main_metric"] = table["main_metric"].fillna(table["dataset"].map(metric_of))
    table["gflops"] = table.apply(_gflops, axis=1)
    table = table.astype({"target_length": "Int64", "params": "Int64", **{c: "Int64" for c in _CLIPS}})
    ensemble = table["architecture"] == "ensemble"
    return (table.assign(_ensemble=ensemble).sort_values(["dataset", "_ensemble", "mAP"], ascending=[True, True, False])
            .reset_index(drop=True)[COLUMNS])


# Writing the table


def significant(x: float, digits: int = 3) -> str:
    """`x` with about `digits` significant digits, never in scientific notation."""
    if x == 0:
        return "0"
    return f"{x:.{max(0, digits - 1 - math.floor(math.log10(abs(x))))}f}"


def _fmt(fn: Callable[[float], str]) -> Callable[[float], str]:
    """`fn` for numbers, an empty cell for NaN."""
    return lambda x: "" if pd.isna(x) else fn(x)


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table as rounded strings with readable headers; columns empty in every row are dropped."""
    three = _fmt(lambda x: f"{x:.3f}")
    ci = [f"[{lo:.3f}, {hi:.3f}]" if pd.notna(lo) else "" for lo, hi in zip(table["mAP_ci_low"], table["mAP_ci_high"])]
    shown = pd.DataFrame({
        "dataset": table["dataset"],
        "model": table["model"],
        "architecture": table["architecture"],
        "front-end": table["frontend"].fillna(""),
        "params (M)": (table["params"] / 1e6).map(_fmt(significant)),
        "GFLOPs": table["gflops"].map(_fmt(significant)),
        "seeds": table["seeds"].astype(str),
        "folds": table["folds"].map(lambda n: str(int(n)) if n > 1 else ""),
        "selected on": table["selected_on"].fillna(""),
        **{f"{c.split('_')[0]} clips": table[c].map(_fmt(str)) for c in _CLIPS},
        "mAP": table["mAP"].map(three),
        "mAP 95% CI": ci,
        "mAP std": table["mAP_std"].map(_fmt(lambda x: f"{x:.4f}")),
        "mAUC": table["mAUC"].map(three),
        "d'": table["d_prime"].map(three),
        "acc": table["acc"].where(table["main_metric"] == "acc").map(three),
        "fold std": table["fold_std"].map(_fmt(lambda x: f"{x:.4f}")),
        "ckpt-ens. mAP": table["ensemble_mAP"].map(three),
        "WA mAP": table["wa_mAP"].map(three),
        "train h": table["train_hours"].map(_fmt(significant)),
        "device": table["device"].fillna(""),
    })  # fmt: skip
    return shown.loc[:, shown.ne("").any()]


_TEXT_COLUMNS = {"dataset", "model", "architecture", "front-end", "selected on", "device"}
LEGEND = (
    "mAP, mAUC, d' and acc: on the eval set at the best epoch, chosen on the set named in \"selected on\" (valid: a "
    "validation split; eval: the paper's AudioSet protocol, selected and reported on eval), mean over seeds; mAP 95% CI: bootstrap over clips "
    "(mean of the seeds' bounds); mAP std: over seeds; ckpt-ens.: checkpoint ensemble; WA: weight averaging; "
    "GFLOPs: one clip at the run's input size; train h: training time per seed in GPU-hours (CPU wall hours for CPU runs); "
    "clips: those each set actually used (unreadable ones are listed in the run's summary.json). "
    "Cross-validation (folds): every metric is the mean over the folds, at the epoch whose fold-mean main metric is "
    "best (get_esc_result.py) when each fold was selected on itself; fold std: std over folds of the main metric; "
    "train h and eval clips: all folds; train and valid clips: per fold."
)


def write_tables(table: pd.DataFrame, out: Path) -> None:
    """table.csv (full precision), table.md and table.tex (rounded)."""
    with atomic_path(out / "table.csv") as tmp:
        table.to_csv(tmp, index=False)
    shown = display_table(table)
    align = ["left" if c in _TEXT_COLUMNS else "right" for c in shown.columns]
    markdown = shown.to_markdown(index=False, colalign=align, disable_numparse=True)
    write_text(out / "table.md", f"{markdown}\n\n{LEGEND}\n")
    column_format = "".join(a[0] for a in align)
    write_text(out / "table.tex", shown.to_latex(index=False, escape=True, column_format=column_format))


# Figures


def save_figure(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix[1:], dpi=DPI, bbox_inches="tight")


def _map_intervals(data: pd.DataFrame, color: str | None = None, **kwargs: object) -> None:
    """One facet of mAP_by_model: a point per model and a line for its 95% CI, best on top."""
    ax = plt.gca()
    y = np.arange(len(data))[::-1]
    ax.hlines(y, data["mAP_ci_low"], data["mAP_ci_high"], color=color, linewidth=2, alpha=0.6, label="95% CI")
    ax.plot(data["mAP"], y, "o", color=color, label="mAP")
    ax.set_yticks(y, data["label"])


def plot_map_by_model(table: pd.DataFrame) -> plt.Figure:
    is_model = table["architecture"] != "ensemble"
    data = table.assign(label=table["model"].where(is_model, table["model"] + " (ensemble)"))
    rows = data.groupby("dataset").size().max()
    grid = sns.FacetGrid(data, col="dataset", col_wrap=min(3, data["dataset"].nunique()), sharex=False,
                         sharey=False, height=1.5 + 0.35 * rows, aspect=1.4)
    grid.map_dataframe(_map_intervals)
    grid.set_axis_labels("mAP (95% CI)", "")
    grid.set_titles("{col_name}")
    grid.add_legend()
    return grid.figure


def class_extremes(classes: pd.DataFrame, k: int = TOP_CLASSES) -> pd.DataFrame:
    """The `k` best and `k` worst classes by AP (each at most half the classes that have an AP)."""
    ranked = classes.dropna(subset="AP").sort_values("AP", ascending=False)
    top = min(k, math.ceil(len(ranked) / 2))
    bottom = min(k, len(ranked) - top)
    return pd.concat([ranked.head(top).assign(group="top"), ranked.tail(bottom).assign(group="bottom")])


def per_class_of_best(table: pd.DataFrame, seeds: pd.DataFrame) -> pd.DataFrame:
    """Per-class AP (mean over seeds) of the best single model of each dataset: its extreme classes."""
    best = table[table["architecture"] != "ensemble"].groupby("dataset").head(1)[["dataset", "model"]]
    files = seeds.merge(best, on=["dataset", "model"])
    classes = pd.concat(pd.read_csv(f).assign(dataset=d, model=m)
                        for f, d, m in files[["per_class", "dataset", "model"]].itertuples(index=False))
    mean = classes.groupby(["dataset", "model", "index", "display_name"], as_index=False)["AP"].mean()
    return pd.concat(class_extremes(group) for _, group in mean.groupby("dataset"))


def plot_per_class_ap(extremes: pd.DataFrame) -> plt.Figure:
    data = extremes.assign(panel=extremes["dataset"] + ": " + extremes["model"])
    rows = data.groupby("panel").size().max()
    grid = sns.catplot(data, kind="bar", x="AP", y="display_name", hue="group", col="panel",
                       col_wrap=min(3, data["panel"].nunique()), sharex=True, sharey=False, dodge=False,
                       height=1.5 + 0.25 * rows, aspect=1.4)
    grid.set_axis_labels("AP (mean over seeds)", "")
    grid.set_titles("{col_name}")
    grid.set(xlim=(0, 1))
    return grid.figure


def training_curves(seeds: pd.DataFrame) -> pd.DataFrame:
    """Long frame of every run's per-epoch eval mAP, train loss and valid loss (all seeds)."""
    runs = seeds[seeds["architecture"] != "ensemble"]
    epochs = pd.concat(pd.read_csv(f).assign(dataset=d, model=m, run=f"{s}/{k}")  # a line per seed and fold
                       for f, d, m, s, k in runs[["curves", "dataset", "model", "seed", "fold"]].itertuples(index=False))
    long = epochs.melt(id_vars=["dataset", "model", "run", "epoch"], value_vars=["mAP", "train_loss", "valid_loss"],
                       var_name="curve", value_name="value")
    long["panel"] = long["curve"].map({"mAP": "eval mAP", "train_loss": "loss", "valid_loss": "loss"})
    long["split"] = long["curve"].map({"mAP": "eval", "train_loss": "train", "valid_loss": "eval"})
    return long


def plot_training_curves(curves: pd.DataFrame) -> plt.Figure:
    grid = sns.relplot(curves, kind="line", x="epoch", y="value", hue="model", style="split", units="run",
                       estimator=None, row="dataset", col="panel", col_order=["eval mAP", "loss"],
                       facet_kws=dict(sharey=False), height=3, aspect=1.3, marker="o")
    grid.set_titles("{row_name}: {col_name}")
    grid.set_ylabels("")
    for ax in grid.axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return grid.figure


def plot_map_vs_params(table: pd.DataFrame) -> plt.Figure:
    data = table.dropna(subset="params").assign(params_M=lambda t: t["params"] / 1e6)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    sns.scatterplot(data, x="params_M", y="mAP", hue="dataset", style="dataset", s=60, ax=ax)
    for row in data.itertuples():
        ax.annotate(row.model, (row.params_M, row.mAP), xytext=(4, 3), textcoords="offset points", fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.15, y=0.1)
    ax.set_xlabel("parameters (M, log scale)")
    ax.set_ylabel("mAP (mean over seeds)")
    return fig


def write_figures(table: pd.DataFrame, seeds: pd.DataFrame, out: Path) -> None:
    """mAP_by_model (.png and .pdf), per_class_ap, training_curves and mAP_vs_params (.png)."""
    figures = [
        ("mAP_by_model", plot_map_by_model(table), (".png", ".pdf")),
        ("per_class_ap", plot_per_class_ap(per_class_of_best(table, seeds)), (".png",)),
        ("training_curves", plot_training_curves(training_curves(seeds)), (".png",)),
        ("mAP_vs_params", plot_map_vs_params(table), (".png",)),
    ]
    for name, fig, suffixes in figures:
        for suffix in suffixes:
            save_figure(fig, out / f"{name}{suffix}")
        plt.close(fig)


def compare(runs: Iterable[str | Path], ensembles: Iterable[str | Path], out: str | Path) -> pd.DataFrame:
    """Read runs and ensembles, write the tables and figures to `out`; return the table."""
    out = Path(out)
    seeds = read_seeds(runs, ensembles)
    table = comparison_table(seeds)
    write_tables(table, out)
    write_figures(table, seeds, out)
    return table
