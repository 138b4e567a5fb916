"""Robustness probing: a trained run's best checkpoint on its eval set under waveform
perturbations (`atdr.data.perturb`), without retraining.

`BestCheckpoint` scores a run's eval set as `atdr train` did: the run's data path
(`atdr.data.loaders`, packed or reference), its normalisation, evaluation batch size and memory
format, `atdr.predict.predict` in fp32. So the clean condition reproduces the run's eval mAP
(checked, and said in the log); each perturbation changes every clip's waveform after reading
and before the features (the loader's `wave_transform`). The cost analysis times inference
through the same class.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from atdr.checkpoint import ModelBundle
from atdr.data.datafile import read_datafile
from atdr.data.dataset import WaveTransform
from atdr.data.features import get_frontend
from atdr.data.loaders import ensure_packed, run_loaders, store_of
from atdr.data.perturb import Perturbation
from atdr.errors import AtdrError
from atdr.metrics import evaluate
from atdr.predict import Prediction, predict
from atdr.run import read_run

log = logging.getLogger(__name__)

COLUMNS = ["run", "perturbation", "strength", "label", "mAP", "mAUC", "d_prime", "acc", "main_metric", "clips",
           "seconds", "clips_per_s"]


class BestCheckpoint:
    """A finished run's best checkpoint, ready to score its eval set as `atdr train` scored it."""

    def __init__(self, run_dir: str | Path, device: torch.device | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.config = cfg = read_run(self.run_dir).config
        bundle = ModelBundle.load(self.run_dir / "checkpoints" / "best.pt")
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = bundle.build().to(self.device,
                                       memory_format=torch.channels_last if cfg.train.channels_last else None)
        self.data = run_loaders(cfg, bundle.labels, get_frontend(bundle.frontend), (bundle.mean, bundle.std),
                                self.device)
        if cfg.data.loader == "packed":
            ensure_packed(cfg.data.eval)
        self.clips = read_datafile(cfg.data.eval, bundle.labels, check_files=cfg.data.loader == "reference")
        self.batch_size = cfg.train.eval_batch_size or 2 * cfg.train.batch_size

    def predict(self, wave_transform: WaveTransform | None = None, clips: int | None = None,
                workers: int = 0) -> Prediction:
        """Predictions on the eval set (its first `clips` clips), each waveform changed by
        `wave_transform` first."""
        eval_file = self.config.data.eval
        store = None if clips is None else store_of(eval_file)  # a part of the set: found in its store
        loader = self.data.loader(eval_file, self.clips[:clips], self.batch_size, store=store,
                                  wave_transform=wave_transform, num_workers=workers)
        return predict(self.model, loader, self.device, inputs=self.data.eval_inputs)


def probe(run_dir: str | Path, perturbations: list[Perturbation], workers: int = 0,
          device: torch.device | None = None) -> pd.DataFrame:
    """One row per condition (clean first, then `perturbations` in order) with the scores of the
    run's best checkpoint on its eval set. Babble is drawn from the eval set itself."""
    checkpoint = BestCheckpoint(run_dir, device)
    main = "mAP" if checkpoint.config.data.task == "multilabel" else "acc"
    expected = _run_score(checkpoint.run_dir, main)
    rows = []
    for p in tqdm([None, *perturbations], desc=f"probe {run_dir}", unit="condition", disable=None):
        start = time.perf_counter()
        result = checkpoint.predict(p, workers=workers)
        seconds = time.perf_counter() - start
        scores = evaluate(result.probs, result.targets)
        rows.append({"run": str(run_dir), "perturbation": p.kind if p else "clean", "strength": p.value if p else "",
                     "label": p.label if p else "clean", **{k: getattr(scores, k) for k in ("mAP", "mAUC", "d_prime", "acc")},
                     "main_metric": main, "clips": len(result.probs), "seconds": seconds,
                     "clips_per_s": len(result.probs) / seconds})
        log.info("%s, %s: %s %.4f (%.0f clips/s)", run_dir, rows[-1]["label"], main, rows[-1][main],
                 rows[-1]["clips_per_s"])
    if rows[0][main] == expected:
        log.info("%s: the clean %s reproduces the run's eval %s", run_dir, main, main)
    else:
        log.warning("%s: the clean %s %.6f differs from the run's eval %s %.6f (another device or library version?); "
                    "the perturbed scores compare with the clean one", run_dir, main, rows[0][main], main, expected)
    return pd.DataFrame(rows, columns=COLUMNS)


def _run_score(run_dir: Path, main: str) -> float:
    """The run's eval score at its best epoch (summary.json)."""
    path = run_dir / "summary.json"
    try:
        return float(json.loads(path.read_text())["best"][main])
    except FileNotFoundError:
        raise AtdrError(f"{run_dir}: no summary.json; is the run finished? (atdr train writes it at the end)") from None
    except (OSError, ValueError, KeyError) as e:
        raise AtdrError(f"cannot read {path}: {e}") from None
