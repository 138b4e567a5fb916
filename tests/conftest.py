"""Shared fixtures: the reference material in ../shared and a tiny embedded dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from atdr.data.synth import synthesize

ROOT = Path(__file__).resolve().parents[1]
SHARED_AUDIOSET = ROOT.parent / "shared" / "fixtures" / "audioset"


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
