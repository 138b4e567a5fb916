"""Cost: what each model's mAP costs to train and to run.

Per model (mean over seeds): parameters and GFLOPs per clip at its input size, eval mAP (all as
the comparison table computes them: `atdr.report`), training clips/s (the training loop's own
measurement, summary.json), inference clips/s (measured here: clips read, featurised and scored
by the best checkpoint, batches of the run's evaluation, fp32, on this machine's device),
training cost in device-hours and mAP per device-hour. Device-hours are GPU-hours for runs on
CUDA (job wall time times GPUs) and CPU-hours for CPU runs (the CPU time of the job, all its
processes), from each run's training benchmark (Snakemake's `benchmark:` file); without one,
the training loop's time from summary.json (wall time on the CPU). A model is on the Pareto
front when no other model reaches at least its mAP for at most its cost.
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import FuncFormatter, NullFormatter

from atdr.analysis.common import read_json, write_figure, write_table
from atdr.errors import AtdrError
from atdr.probe import BestCheckpoint
from atdr.report import comparison_table, read_seeds, significant

LEGEND = ("params, GFLOPs per clip and mAP as in the comparison table; train and infer clips/s: training loop and "
          "inference (features and model, fp32) throughput; train cost: device-hours of the training job (GPU-hours "
          "on CUDA, CPU-hours on the CPU); mAP/h: mAP per device-hour; Pareto: no other model has at least this mAP "
          "for at most this cost.")


def inference_speed(run: str | Path, clips: int = 64, workers: int = 0, device: torch.device | None = None) -> float:
    """Clips per second of the run's best checkpoint on the first `clips` clips of its eval set,
    read, featurised and scored as the run's evaluation (`atdr.probe.BestCheckpoint`), after a
    warm-up pass."""
    checkpoint = BestCheckpoint(run, device)
    checkpoint.predict(clips=checkpoint.batch_size)  # warm-up
    _synchronize(checkpoint.device)
    start = time.perf_counter()
    done = len(checkpoint.predict(clips=clips, workers=workers).probs)
    _synchronize(checkpoint.device)
    return done / (time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_hours(run: str | Path, benchmark: str | Path | None) -> float:
    """Device-hours of a run's training (see the module docstring)."""
    summary = read_json(Path(run) / "summary.json")
    gpus = summary.get("gpus", 0)
    if benchmark is None:
        return summary["train_seconds"] * max(gpus, 1) / 3600
    try:
        row = pd.read_csv(benchmark, sep="\t").iloc[0]
    except (OSError, ValueError, IndexError) as e:
        raise AtdrError(f"cannot read benchmark {benchmark}: {e}") from None
    seconds = row["s"] * gpus if summary["device"] == "cuda" else row["cpu_time"]
    return float(seconds) / 3600


def pareto_front(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """True where no other point has at most this cost and at least this score, one strictly."""
    cost, score = np.asarray(cost, dtype=float), np.asarray(score, dtype=float)
    dominated = [((cost <= c) & (score >= s) & ((cost < c) | (score > s))).any() for c, s in zip(cost, score)]
    return ~np.array(dominated, dtype=bool)


def cost_table(runs: list[str | Path], benchmarks: list[str | Path] | None = None, clips: int = 64,
               workers: int = 0, device: torch.device | None = None) -> pd.DataFrame:
    """One row per (dataset, model), best mAP per device-hour first."""
    if benchmarks is not None and len(benchmarks) != len(runs):
        raise AtdrError(f"give one benchmark per run ({len(runs)} runs, {len(benchmarks)} benchmarks)")
    seeds = read_seeds(runs)
    seeds["train_clips_per_s"] = [read_json(Path(r) / "summary.json")["clips_per_s"] for r in runs]
    seeds["infer_clips_per_s"] = [inference_speed(r, clips, workers, device) for r in runs]
    seeds["train_cost_h"] = [training_hours(r, b) for r, b in zip(runs, benchmarks or [None] * len(runs))]
    speeds = seeds.groupby(["dataset", "model"])[["train_clips_per_s", "infer_clips_per_s", "train_cost_h"]].mean()
    table = comparison_table(seeds).join(speeds, on=["dataset", "model"])
    table = table[["dataset", "model", "architecture", "params", "gflops", "seeds", "mAP", "mAP_ci_low", "mAP_ci_high",
                   "train_clips_per_s", "infer_clips_per_s", "device", "train_cost_h"]]
    table["mAP_per_hour"] = table["mAP"] / table["train_cost_h"]
    table["pareto"] = False
    for _, group in table.groupby("dataset"):
        table.loc[group.index, "pareto"] = pareto_front(group["train_cost_h"], group["mAP"])
    return table.sort_values(["dataset", "mAP_per_hour"], ascending=[True, False]).reset_index(drop=True)


def _shown(x: float) -> str:
    return "" if pd.isna(x) else significant(x)


def plot_cost(table: pd.DataFrame) -> plt.Figure:
    """mAP against training cost (log scale), the Pareto front marked, a panel per dataset."""
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        data = table[table["dataset"] == dataset]
        front = data[data["pareto"]].sort_values("train_cost_h")
        ax.scatter(data["train_cost_h"], data["mAP"], s=40, color="0.55", label="model")
        ax.step(front["train_cost_h"], front["mAP"], where="post", color="C3", linewidth=1.5, alpha=0.8)
        ax.scatter(front["train_cost_h"], front["mAP"], s=70, color="C3", label="Pareto front", zorder=3)
        for row in data.itertuples():
            ax.annotate(row.model, (row.train_cost_h, row.mAP), xytext=(4, 3), textcoords="offset points", fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.15, y=0.1)
        device = "GPU" if (data["device"] == "cuda").all() else "CPU" if (data["device"] == "cpu").all() else "device"
        ax.set_xlabel(f"training cost ({device}-hours, log scale)")
        ax.set_ylabel("mAP (mean over seeds)")
        ax.set_title(dataset)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def cost(runs: list[str | Path], out: str | Path, benchmarks: list[str | Path] | None = None, clips: int = 64,
         workers: int = 0, device: torch.device | None = None) -> pd.DataFrame:
    """Write OUT/cost.{csv,md} and OUT/mAP_vs_cost.png; return the table."""
    out = Path(out)
    table = cost_table(runs, benchmarks, clips, workers, device)
    shown = pd.DataFrame({
        "dataset": table["dataset"], "model": table["model"],
        "params (M)": (table["params"] / 1e6).map(_shown), "GFLOPs": table["gflops"].map(_shown),
        "mAP": table["mAP"].map("{:.3f}".format),
        "train clips/s": table["train_clips_per_s"].map(_shown),
        "infer clips/s": table["infer_clips_per_s"].map(_shown), "device": table["device"],
        "train cost (h)": table["train_cost_h"].map(_shown), "mAP/h": table["mAP_per_hour"].map(_shown),
        "Pareto": table["pareto"].map({True: "yes", False: ""}),
    })  # fmt: skip
    write_table(table, shown, out / "cost", LEGEND)
    write_figure(plot_cost(table), out / "mAP_vs_cost.png")
    return table
