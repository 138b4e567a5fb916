"""Robustness probing: a trained run's best checkpoint on its eval set under waveform
perturbations (`atdr.data.perturb`), without retraining.

The clean condition is the run's own evaluation, reproduced: the same eval clips, features,
normalisation and batch size as `atdr train` scored them, in fp32, so its mAP equals the run's
eval mAP (checked, and said in the log). Each perturbation changes every clip's waveform after
loading and before the features (`AudioDataset`'s `wave_transform`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from atdr.checkpoint import ModelBundle
from atdr.data.datafile import read_datafile
from atdr.data.dataset import AudioDataset, batch_loader
from atdr.data.features import get_frontend
from atdr.data.perturb import Perturbation
from atdr.errors import AtdrError
from atdr.metrics import evaluate
from atdr.predict import predict
from atdr.run import read_run

log = logging.getLogger(__name__)

COLUMNS = ["run", "perturbation", "strength", "label", "mAP", "mAUC", "d_prime", "acc", "main_metric", "clips",
           "seconds", "clips_per_s"]


def probe(run_dir: str | Path, perturbations: list[Perturbation], workers: int = 0, seed: int = 0,
          device: torch.device | None = None) -> pd.DataFrame:
    """One row per condition (clean first, then `perturbations` in order) with the scores of the
    run's best checkpoint on its eval set. Babble is drawn from the eval set itself."""
    run_dir = Path(run_dir)
    cfg = read_run(run_dir).config
    main = "mAP" if cfg.data.task == "multilabel" else "acc"
    expected = _run_score(run_dir, main)
    bundle = ModelBundle.load(run_dir / "checkpoints" / "best.pt")
    labels = bundle.labels
    clips = read_datafile(cfg.data.eval, labels)
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = bundle.build().to(device)
    frontend = get_frontend(bundle.frontend)
    paths = [c.wav for c in clips]

    conditions = [None, *(dataclasses.replace(p, seed=seed, clips=paths if p.kind == "babble" else ())
                          for p in perturbations)]
    rows = []
    for p in tqdm(conditions, desc=f"probe {run_dir}", unit="condition", disable=None):
        dataset = AudioDataset(clips, labels, frontend, bundle.target_length, (bundle.mean, bundle.std),
                               skip_unreadable=cfg.train.skip_unreadable, wave_transform=p)
        start = time.perf_counter()
        result = predict(model, batch_loader(dataset, 2 * cfg.train.batch_size, num_workers=workers), device)
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
