"""The ESC-50 and Speech Commands recipes plan exactly what the original scripts run
(egs/esc50/run_esc.sh, egs/speechcommands/run_sc.sh, and the dataset branches of src/run.py and
src/traintest.py of AudioTaggingDoneRight); the numbers below are those scripts'."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from test_workflow import ENV, ROOT, planned, snakemake

from snakemake.utils import validate

from atdr.config import parse_config
from atdr.workflow import prepare, run_config

ORIGINAL_DECAY = list(range(5, 26))  # traintest.py: MultiStepLR(optimizer, list(range(5, 26)), gamma=0.85)


def recipe(name: str) -> dict:
    """The config as the workflow sees it: schema defaults filled in, folds expanded."""
    config = yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return {**config, "datasets": prepare(config["datasets"])}


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setitem(ENV, "ATDR_CHECKPOINTS", str(tmp_path / "checkpoints"))


def test_esc50_plans_five_folds_from_one_download(tmp_path, no_weights):
    result = snakemake(tmp_path, "-n", config=ROOT / "config" / "esc50.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    assert planned(result) == {"download_corpus": 1, "pretrained_weights": 1, "link_download": 5, "datafile": 10,
                               "pack": 10, "run_config": 5, "train": 5, "evaluate": 5, "compare": 1, "all": 1}
    assert "audioset_10_10_0.4593.pth" in result.stdout  # audiosetpretrain=True


@pytest.mark.parametrize("fold", [1, 2, 3, 4, 5])
def test_esc50_run_configs_are_run_esc_sh(fold):
    config = recipe("esc50")
    doc = run_config(config, f"esc50_fold{fold}", "ast", 0)
    assert config["datasets"][f"esc50_fold{fold}"]["eval_segments"] == [f"fold{fold}.csv"]  # prep_esc50.py
    assert config["datasets"][f"esc50_fold{fold}"]["train_segments"] == [f"fold{k}.csv" for k in range(1, 6) if k != fold]
    assert doc["model"] == {"name": "ast", "params": {"audioset_pretrain": True, "fstride": 10, "imagenet_pretrain": True,
                                                      "model_size": "base384", "tstride": 10}}
    assert doc["data"] == {
        "train": f"results/esc50_fold{fold}/data/train.json", "valid": None,
        "eval": f"results/esc50_fold{fold}/data/eval.json",  # --data-val: selection and report on the held-out fold
        "labels": f"results/esc50_fold{fold}/download/class_labels_indices.csv", "weights": None,  # bal=none
        "frontend": "kaldi128", "target_length": 512, "mean": -6.6268077, "std": 5.358466, "task": "singlelabel", "loader": "packed",
    }  # fmt: skip
    assert doc["augment"] == {"mixup": 0.0, "mixup_alpha": 10.0, "mixup_partner": "dataset", "freqm": 24, "timem": 96}
    assert doc["optim"] == {"lr": 1e-5, "betas": [0.95, 0.999], "weight_decay": 5e-7, "warmup_steps": 0,
                            "milestones": ORIGINAL_DECAY, "gamma": 0.85}
    assert doc["train"] == {"epochs": 25, "batch_size": 48, "loss": "ce", "precision": "auto", "seed": 0}
    cfg = parse_config(copy.deepcopy(doc))
    assert cfg.augment.noise is False and cfg.train.wa_start is None


def test_speechcommands_plans_one_run_selected_on_validation(tmp_path, no_weights):
    result = snakemake(tmp_path, "-n", config=ROOT / "config" / "speechcommands.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    assert planned(result) == {"download_corpus": 1, "pretrained_weights": 1, "link_download": 1, "datafile": 3,
                               "pack": 3, "run_config": 1, "train": 1, "evaluate": 1, "compare": 1, "all": 1}
    assert "deit_base_distilled_patch16_384.pth" in result.stdout  # imagenetpretrain=True, audiosetpretrain=False
    for split in ("train", "valid", "eval"):
        assert f"results/speechcommands/data/{split}.json" in result.stdout


def test_speechcommands_run_config_is_run_sc_sh():
    doc = run_config(recipe("speechcommands"), "speechcommands", "ast", 0)
    assert doc["model"] == {"name": "ast", "params": {"audioset_pretrain": False, "fstride": 10, "imagenet_pretrain": True,
                                                      "model_size": "base384", "tstride": 10}}
    assert doc["data"] == {
        "train": "results/speechcommands/data/train.json",
        "valid": "results/speechcommands/data/valid.json",  # --data-val: the best epoch
        "eval": "results/speechcommands/data/eval.json",  # --data-eval: reported
        "labels": "results/speechcommands/download/class_labels_indices.csv", "weights": None,
        "frontend": "kaldi128", "target_length": 128, "mean": -6.845978, "std": 5.5654526, "task": "singlelabel", "loader": "packed",
    }  # fmt: skip
    assert doc["augment"] == {"mixup": 0.6, "mixup_alpha": 10.0, "mixup_partner": "dataset", "freqm": 48, "timem": 48,
                              "noise": True}
    assert doc["optim"] == {"lr": 2.5e-4, "betas": [0.95, 0.999], "weight_decay": 5e-7, "warmup_steps": 0,
                            "milestones": ORIGINAL_DECAY, "gamma": 0.85}
    assert doc["train"] == {"epochs": 30, "batch_size": 128, "loss": "bce", "precision": "auto", "seed": 0}
    parse_config(copy.deepcopy(doc))


def test_the_bce_of_a_probability_model_is_the_bce_on_probabilities():
    """Speech Commands' loss for any model: BCE-with-logits for AST, BCE on probabilities for pooling models."""
    import torch

    from atdr.predict import make_loss

    p, y = torch.tensor([[0.2, 0.9]]), torch.tensor([[0.0, 1.0]])
    assert make_loss("bce", "logits")(torch.logit(p), y) == pytest.approx(torch.nn.BCELoss()(p, y).item(), rel=1e-5)
    assert make_loss("bce", "probs")(p, y) == pytest.approx(torch.nn.BCELoss()(p, y).item(), rel=1e-5)


def _train_lists_beside_folds(datasets: dict) -> None:
    datasets["esc50"]["train_segments"] = ["fold1.csv"]


def _a_dataset_named_like_a_fold(datasets: dict) -> None:
    plain = {k: v for k, v in datasets["esc50"].items() if k != "folds"}
    datasets["esc_fold1"] = {**plain, "train_segments": ["fold1.csv"], "eval_segments": ["fold2.csv"]}


@pytest.mark.parametrize("edit, message", [
    (_train_lists_beside_folds, "folds makes the train and eval lists of each fold; remove train_segments"),
    (_a_dataset_named_like_a_fold, "names ending in _fold<k> are the folds of a cross-validation"),
])
def test_cross_validation_mistakes_are_reported(tmp_path, edit, message):
    config = yaml.safe_load((ROOT / "config" / "esc50.yaml").read_text())
    edit(config["datasets"])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", config=path)
    assert result.returncode != 0 and message in result.stdout + result.stderr


def test_the_default_config_needs_no_network(tmp_path):
    result = snakemake(tmp_path, "-n")
    jobs = planned(result)
    assert not any(rule.startswith(("download", "pretrained", "link_download")) for rule in jobs)
    assert Path(ROOT / "config" / "config.yaml").read_text().count("source: synth") == 1
