"""Running a model over a dataset: probabilities, targets and the mean loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from atdr.data.dataset import reference_inputs
from atdr.errors import AtdrError

EPS = 1e-7

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Inputs = Callable[[Any, torch.device], tuple[torch.Tensor, torch.Tensor]]  # a batch's clips -> (x, y) on the device


def make_loss(kind: str, output: str) -> LossFn:
    """The loss for a model's raw output (`"logits"` or `"probs"`).

    - `bce`: BCE-with-logits for logit models; BCE on probabilities clamped to [1e-7, 1-1e-7]
      for models that pool probabilities (the original TAL/PSLA models).
    - `ce`: cross-entropy with (soft) targets normalised to sum to 1; a probability model's
      log-probabilities serve as its logits.
    """
    if kind == "bce":
        if output == "logits":
            return F.binary_cross_entropy_with_logits

        def bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            # BCELoss written out: NaN probabilities give a NaN loss (which the loop reports)
            # instead of BCELoss's range error.
            p = p.clamp(EPS, 1 - EPS)
            return -(y * torch.log(p) + (1 - y) * torch.log1p(-p)).mean()
        return bce
    if kind == "ce":
        def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            logits = out if output == "logits" else torch.log(out.clamp(EPS, 1.0))
            return F.cross_entropy(logits, y / y.sum(dim=1, keepdim=True).clamp_min(EPS))
        return cross_entropy
    raise ValueError(f"unknown loss {kind!r}")


@dataclass(frozen=True)
class Prediction:
    """A model's output on a dataset: one row per clip that could be read."""

    probs: np.ndarray  # [clips, classes]
    targets: np.ndarray  # [clips, classes]
    loss: float  # mean loss, NaN without a loss function
    unreadable: list[int]  # dataset indices of the clips that could not be read (no row)


@torch.no_grad()
def predict(model: torch.nn.Module, loader: DataLoader, device: torch.device, loss_fn: LossFn | None = None,
            inputs: Inputs = reference_inputs) -> Prediction:
    """Probabilities of every clip `loader` (from `atdr.data.dataset.batch_loader`) yields, its
    batches made into `(x, y)` on `device` by `inputs` (the data path's `eval_inputs`), computed in
    fp32 whatever precision the model was trained in: half-precision outputs would round
    probabilities into ties and change the AP ranking."""
    model.eval()
    probs, targets, unreadable, losses, sizes = [], [], [], [], []
    for batch in loader:
        unreadable += batch.unreadable
        if batch.clips is None:
            continue
        x, y = inputs(batch.clips, device)
        out = model(x).float()
        if loss_fn is not None:
            losses.append(loss_fn(out, y).item())
            sizes.append(len(x))
        probs.append(model.proba(out).cpu())
        targets.append(y.cpu())
    if not probs:
        raise AtdrError(f"none of the {len(unreadable)} clips could be read")
    loss = float(np.average(losses, weights=sizes)) if losses else float("nan")
    return Prediction(torch.cat(probs).numpy(), torch.cat(targets).numpy(), loss, unreadable)
