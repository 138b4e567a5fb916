"""The interface every model answers: `[batch, time, freq]` features in, `[batch, label_dim]` out."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import nn

from atdr.errors import AtdrError

Output = Literal["logits", "probs"]


class AudioTagger(nn.Module):
    """Base class of the model zoo.

    `forward(x)` takes normalised features `[batch, time, freq]` (`time` = `target_length`,
    `freq` = `n_mels`) and returns `[batch, label_dim]` scores; `output` says which kind:
    "logits" (train with BCEWithLogitsLoss) or "probs" (train with BCELoss).
    `predict_proba` gives probabilities either way.

    `create()` sets `model_name` and `config` (every argument the model was built with), which
    is what a checkpoint needs to rebuild it.
    """

    output: ClassVar[Output]
    model_name: str
    config: dict[str, Any]

    def __init__(self, *, label_dim: int, n_mels: int, target_length: int) -> None:
        super().__init__()
        for key, value in (("label_dim", label_dim), ("n_mels", n_mels), ("target_length", target_length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AtdrError(f"{type(self).__name__}: {key} must be a positive integer, got {value!r}")
        self.label_dim = label_dim
        self.n_mels = n_mels
        self.target_length = target_length

    def proba(self, output: torch.Tensor) -> torch.Tensor:
        """Probabilities from `forward`'s output (for code that also needs the raw output)."""
        return torch.sigmoid(output) if self.output == "logits" else output

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities `[batch, label_dim]` in [0, 1]."""
        return self.proba(self(x))
