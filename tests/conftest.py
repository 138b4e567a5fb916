"""Shared fixtures: the reference material in ../shared and a tiny embedded dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from atdr.data.synth import synthesize

ROOT = Path(__file__).resolve().parents[1]
SHARED_AUDIOSET = ROOT.parent / "shared" / "fixtures" / "audioset"


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for modules of many tiny models: two OpenMP threads on two shared
    cores make small ops very slow when the machine is busy."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def audioset_fixtures() -> Path:
    """Real AudioSet metadata and one clip (../shared/fixtures/audioset); skip where absent."""
    if not SHARED_AUDIOSET.is_dir():
        pytest.skip(f"reference fixtures not found at {SHARED_AUDIOSET} (the project's ../shared folder)")
    return SHARED_AUDIOSET


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small embedded dataset (48 train, 24 eval clips of 1 s), generated once per session."""
    out = tmp_path_factory.mktemp("synth")
    synthesize(out, n_train=48, n_eval=24, seconds=1.0, seed=0, progress=False)
    return out


def write_run_config(path: Path, data: Path, model: dict, *, frontend: str = "kaldi128", target_length: int = 100,
                     **sections: dict) -> Path:
    """A run config for the embedded dataset folder `data` (norm stats computed on first use)."""
    import yaml

    from atdr.cli import main

    stats = data / f"stats_{frontend}_{target_length}.json"
    if not stats.exists():
        assert main(["-q", "norm-stats", str(data / "train.json"), "--frontend", frontend,
                     "--target-length", str(target_length), "--out", str(stats)]) == 0
    doc = {
        "model": model,
        "data": {"train": str(data / "train.json"), "eval": str(data / "eval.json"),
                 "labels": str(data / "class_labels_indices.csv"), "frontend": frontend,
                 "target_length": target_length, "norm_stats": str(stats)},
        "optim": {"lr": 1e-3, "warmup_steps": 0, "milestones": []},
        "train": {"epochs": 2, "batch_size": 16, "num_workers": 0},
    }
    for section, values in sections.items():
        doc.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(doc))
    return path


TINY_TAL = {"name": "tal", "params": {"embedding_size": 64, "n_conv_layers": 2, "n_pool_layers": 2}}


@pytest.fixture(scope="session")
def trained_run(tiny_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch run of a tiny CRNN on the tiny embedded dataset."""
    from atdr.cli import main

    out = tmp_path_factory.mktemp("runs") / "tal"
    config = write_run_config(out.parent / "tal.yaml", tiny_synth, TINY_TAL, train={"wa_start": 1})
    assert main(["-q", "train", "--config", str(config), "--out", str(out)]) == 0
    return out
