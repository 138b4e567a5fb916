"""`atdr compare` on the outputs of the real pipeline: table values, files, figures, errors.

Built once per module: a tiny embedded dataset, two quick runs (linear on mel64, tal on
kaldi128) laid out as results/synth/MODEL/seed0, `atdr evaluate` on each and their ensemble.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import pandas as pd
import pytest
import yaml

from atdr.cli import main
from atdr.data.features import get_frontend
from atdr.data.synth import synthesize
from atdr.errors import AtdrError
from atdr.models import complexity
from atdr.report import class_extremes, comparison_table, read_seeds

RUNS = {  # model key: (architecture, params, front-end, target length)
    "linear": ("linear", {"hidden_dim": 16}, "mel64", 40),
    "tal": ("tal", {"embedding_size": 64, "n_conv_layers": 2, "n_pool_layers": 2}, "kaldi128", 100),
}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/synth/{linear,tal}/seed0 (trained and evaluated) and results/synth/ensembles/all/seed0."""
    root = tmp_path_factory.mktemp("report")
    data = root / "data"
    synthesize(data, n_train=32, n_eval=16, seconds=1.0, progress=False)
    for key, (name, params, frontend, target_length) in RUNS.items():
        stats = data / f"stats_{frontend}.json"
        assert main(["-q", "norm-stats", str(data / "train.json"), "--frontend", frontend,
                     "--target-length", str(target_length), "--out", str(stats)]) == 0
        config = {
            "model": {"name": name, "params": params},
            "data": {"train": str(data / "train.json"), "eval": str(data / "eval.json"),
                     "labels": str(data / "class_labels_indices.csv"), "frontend": frontend,
                     "target_length": target_length, "norm_stats": str(stats)},
            "optim": {"warmup_steps": 0},
            "train": {"epochs": 2, "batch_size": 16, "num_workers": 0, "device": "cpu"},
        }  # fmt: skip
        (root / f"{key}.yaml").write_text(yaml.safe_dump(config))
        run = root / "results" / "synth" / key / "seed0"
        assert main(["-q", "train", "--config", str(root / f"{key}.yaml"), "--out", str(run)]) == 0
        assert main(["-q", "evaluate", str(run), "--bootstrap", "50"]) == 0
    assert main(["-q", "ensemble", *map(str, runs_of(root / "results")), "--bootstrap", "50",
                 "--out", str(root / "results" / "synth" / "ensembles" / "all" / "seed0")]) == 0
    return root / "results"


def runs_of(results: Path) -> list[Path]:
    return sorted(p for p in results.glob("*/*/seed*") if p.parent.parent.name != "ensembles")


@pytest.fixture(scope="module")
def comparison(results: Path) -> Path:
    out = results.parent / "comparison"
    assert main(["-q", "compare", "--runs", *map(str, runs_of(results)),
                 "--ensembles", str(results / "synth" / "ensembles" / "all" / "seed0"), "--out", str(out)]) == 0
    return out


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_table_holds_the_inputs(results, comparison):
    table = pd.read_csv(comparison / "table.csv").set_index("model")
    assert list(table.index[-1:]) == ["all"] and sorted(table.index[:2]) == ["linear", "tal"]  # ensembles last
    assert table["mAP"][:2].is_monotonic_decreasing
    for key, (name, params, frontend, target_length) in RUNS.items():
        run = results / "synth" / key / "seed0"
        summary, metrics = read_json(run / "summary.json"), read_json(run / "eval" / "metrics.json")
        row = table.loc[key]
        assert (row.dataset, row.architecture, row.frontend) == ("synth", name, frontend)
        assert (row.seeds, row.device) == (1, "cpu")
        assert row.params == summary["params"]
        assert (row.train_clips, row.eval_clips) == (32, 16) and pd.isna(row.valid_clips)  # the clips used
        assert row.train_hours == pytest.approx(summary["train_seconds"] / 3600, rel=1e-12)
        for column, value in [("mAP", metrics["best"]["mAP"]), ("mAUC", metrics["best"]["mAUC"]),
                              ("d_prime", metrics["best"]["d_prime"]), ("mAP_ci_low", metrics["best"]["mAP_ci95"][0]),
                              ("mAP_ci_high", metrics["best"]["mAP_ci95"][1]),
                              ("ensemble_mAP", metrics["ensemble"]["mAP"])]:
            assert row[column] == pytest.approx(value, rel=1e-12), column
        assert pd.isna(row.mAP_std) and pd.isna(row.wa_mAP)
        expected = complexity(name, label_dim=10, n_mels=get_frontend(frontend).n_mels,
                              target_length=target_length, **params)
        assert row.gflops == pytest.approx(expected.gflops)
    ensemble = table.loc["all"]
    metrics = read_json(results / "synth" / "ensembles" / "all" / "seed0" / "metrics.json")["ensemble"]
    assert ensemble.architecture == "ensemble" and ensemble.seeds == 1 and ensemble.eval_clips == 16
    assert ensemble.mAP == pytest.approx(metrics["mAP"], rel=1e-12)
    assert pd.isna(ensemble.params) and pd.isna(ensemble.gflops)


def test_markdown_and_latex_name_every_model(comparison):
    md, tex = (comparison / "table.md").read_text(), (comparison / "table.tex").read_text()
    assert "\\begin{tabular}" in tex and "95\\% CI" in tex
    for model in ["linear", "tal", "all"]:
        assert f"| {model} " in md and f"& {model} &" in tex
    header = md.splitlines()[0]
    assert "| acc " not in header  # multilabel: no accuracy column
    assert re.search(r"\| +train clips \| +eval clips \|", header) and "valid clips" not in header
    assert "WA mAP" not in header and "mAP std" not in header  # empty columns are dropped


@pytest.mark.parametrize("name", ["mAP_by_model", "per_class_ap", "training_curves", "mAP_vs_params"])
def test_figures_are_valid_png(comparison, name):
    head = (comparison / f"{name}.png").read_bytes()[:24]
    assert head[:8] == PNG and head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    assert 300 <= width <= 5000 and 200 <= height <= 5000
    assert (comparison / f"{name}.png").stat().st_size > 5000


def test_map_figure_also_as_pdf(comparison):
    pdf = (comparison / "mAP_by_model.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-32:] and len(pdf) > 2000


def test_class_extremes_split_small_class_lists():
    classes = pd.DataFrame({"display_name": list("abcdefg"), "AP": [0.1, 0.9, float("nan"), 0.5, 0.3, 0.7, 0.2]})
    extremes = class_extremes(classes, k=10)
    assert list(extremes["display_name"]) == list("bfdega") and list(extremes["group"]) == ["top"] * 3 + ["bottom"] * 3
    assert list(class_extremes(classes, k=2)["display_name"]) == list("bfga")


def copy_seed(results: Path, dest: Path, dataset: str, seed: int, mAP: float) -> Path:
    """A copy of the linear run as another seed (and dataset) with best mAP set to `mAP`."""
    run = dest / dataset / "linear" / f"seed{seed}"
    shutil.copytree(results / "synth" / "linear" / "seed0", run)
    metrics = read_json(run / "eval" / "metrics.json")
    metrics["best"]["mAP"] = mAP
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_seeds_and_datasets(results, tmp_path):
    runs = [copy_seed(results, tmp_path / "results", dataset, seed, mAP)
            for dataset, seed, mAP in [("a", 0, 0.4), ("a", 1, 0.6), ("b", 0, 0.5)]]
    summary = read_json(runs[2] / "summary.json")
    (runs[2] / "summary.json").write_text(json.dumps({**summary, "main_metric": "acc"}))  # b is singlelabel
    metrics = read_json(runs[2] / "eval" / "metrics.json")
    metrics["wa"] = {**metrics["best"], "mAP": 0.55}  # and used weight averaging
    (runs[2] / "eval" / "metrics.json").write_text(json.dumps(metrics))
    out = tmp_path / "comparison"
    assert main(["-q", "compare", "--runs", *map(str, runs), "--out", str(out)]) == 0
    table = pd.read_csv(out / "table.csv").set_index("dataset")
    assert table.loc["a", "seeds"] == 2 and table.loc["a", "mAP"] == pytest.approx(0.5)
    assert table.loc["a", "mAP_std"] == pytest.approx(0.02**0.5)  # std of (0.4, 0.6), ddof 1
    assert table.loc["b", "seeds"] == 1 and table.loc["b", "mAP"] == pytest.approx(0.5)
    assert table.loc["b", "wa_mAP"] == pytest.approx(0.55) and pd.isna(table.loc["a", "wa_mAP"])
    shown = pd.read_csv(out / "table.md", sep="|", skiprows=[1], nrows=2, dtype=str).rename(columns=str.strip)
    assert "mAP std" in shown and "WA mAP" in shown and shown["acc"].str.strip().tolist() == ["", f"{table.loc['b', 'acc']:.3f}"]

    config = yaml.safe_load((runs[1] / "config.yaml").read_text())
    config["model"]["params"]["hidden_dim"] = 32
    (runs[1] / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(AtdrError, match="seeds of a/linear differ in model_params"):
        comparison_table(read_seeds(runs))
    with pytest.raises(AtdrError, match="given twice"):
        read_seeds([runs[0], runs[0]])


def test_ensembles_are_listed_after_the_models_even_when_better(results):
    seeds = read_seeds(runs_of(results), [results / "synth" / "ensembles" / "all" / "seed0"])
    seeds.loc[seeds["architecture"] == "ensemble", "mAP"] = 1.0  # the best row by mAP
    table = comparison_table(seeds)
    assert list(table["architecture"] == "ensemble") == [False, False, True]
    assert table["mAP"][:2].is_monotonic_decreasing


def compare_error(capsys, *args: str) -> str:
    assert main(["compare", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


def test_errors_are_one_line(results, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert "no runs given" in compare_error(capsys, "--out", out)

    run = tmp_path / "results" / "synth" / "linear" / "seed0"
    shutil.copytree(results / "synth" / "linear" / "seed0", run)
    shutil.rmtree(run / "eval")
    assert f"run `atdr evaluate {run}` first" in compare_error(capsys, "--runs", str(run), "--out", out)
    (run / "summary.json").unlink()
    assert "no summary.json" in compare_error(capsys, "--runs", str(run), "--out", out)

    for bad in [results / "synth" / "linear", results / "synth" / "ensembles" / "all" / "seed0"]:
        assert "expected a run folder results/DATASET/MODEL/seedN" in compare_error(capsys, "--runs", str(bad),
                                                                                     "--out", out)
    ensemble = str(results / "synth" / "linear" / "seed0")
    assert "expected an ensemble folder" in compare_error(capsys, "--runs", ensemble, "--ensembles", ensemble,
                                                          "--out", out)
    assert not (tmp_path / "out").exists()


def test_cross_validation_folds_make_one_row_at_the_epoch_best_on_average(results, tmp_path):
    """As get_esc_result.py: one epoch for all folds, the best of the fold-mean accuracy."""
    accs = {1: [0.5, 0.8, 0.6], 2: [0.9, 0.7, 0.7], 3: [0.4, 0.6, 0.9]}  # fold means 0.6, 0.7, 0.733: epoch 3
    runs = []
    for k, acc in accs.items():
        run = tmp_path / "results" / f"esc_fold{k}" / "linear" / "seed0"
        shutil.copytree(results / "synth" / "linear" / "seed0", run)
        summary = read_json(run / "summary.json")
        (run / "summary.json").write_text(json.dumps({**summary, "main_metric": "acc", "selected_on": "eval"}))
        pd.DataFrame({"epoch": [1, 2, 3], "mAP": [a / 2 for a in acc], "mAUC": acc, "d_prime": acc, "acc": acc,
                      "train_loss": 1.0, "valid_loss": 1.0}).to_csv(run / "metrics.csv", index=False)
        runs.append(run)
    table = comparison_table(read_seeds([*runs, *runs_of(results)])).set_index("dataset")
    row = table.loc["esc"]
    at_epoch_3 = [0.6, 0.7, 0.9]
    assert row["folds"] == 3 and row["seeds"] == 1 and row["main_metric"] == "acc"
    assert row["acc"] == pytest.approx(sum(at_epoch_3) / 3)  # not the folds' own best epochs (0.867)
    assert row["fold_std"] == pytest.approx(pd.Series(at_epoch_3).std())
    assert row["mAP"] == pytest.approx(sum(at_epoch_3) / 6)
    seconds = read_json(results / "synth" / "linear" / "seed0" / "summary.json")["train_seconds"]
    assert pd.isna(row["mAP_ci_low"]) and row["train_hours"] == pytest.approx(3 * seconds / 3600)  # all folds
    assert (table.loc["synth", "folds"] == 1).all() and table.loc["synth", "fold_std"].isna().all()
