"""`linear`: the original LinearModel, a per-frame MLP baseline with attention pooling."""

from __future__ import annotations

import torch
from torch import nn

from atdr.models._registry import Original, register_model
from atdr.models.base import AudioTagger
from atdr.models.convert import rename_keys
from atdr.models.pooling import FRAME_POOLING_KEYS, FramePooling


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: LinearModel) -> dict[str, torch.Tensor]:
    """An original LinearModel state dict -> ours: the same names but for the head's."""
    return rename_keys(state_dict, FRAME_POOLING_KEYS)


@register_model(
    "linear",
    defaults=dict(n_layers=3, hidden_dim=128, dropout=0.1, pooling="att"),
    frontend="mel64",
    description="Linear baseline: per-frame linear layers with LayerNorm + pooled frame classifier",
    original=Original(
        "src/models/linearModels.py:LinearModel",
        lambda c: dict(n_layers=c["n_layers"], input_dim=c["n_mels"], hidden_dim=c["hidden_dim"],
                       label_dim=c["label_dim"]),
        checkpoint_filter_fn,
        fixed=dict(pooling="att"),
    ),
    paper={},
)
class LinearModel(AudioTagger):
    """Each frame goes through `Linear(n_mels, hidden_dim)`, then `n_layers` x
    (LayerNorm, Linear(hidden_dim, hidden_dim)) with no nonlinearity, dropout before every
    one of these modules (as the original), then `FramePooling`. Paper recipe (run-linear.sh):
    3 layers, hidden 128, mel64 x 400."""

    output = "probs"

    def __init__(
        self,
        *,
        label_dim: int,
        n_mels: int,
        target_length: int,
        n_layers: int,
        hidden_dim: int,
        dropout: float,
        pooling: str,
    ) -> None:
        super().__init__(label_dim=label_dim, n_mels=n_mels, target_length=target_length)
        layers: list[nn.Module] = [nn.Linear(n_mels, hidden_dim)]
        for _ in range(n_layers):
            layers += [nn.LayerNorm(hidden_dim), nn.Linear(hidden_dim, hidden_dim)]
        self.linear = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.head = FramePooling(hidden_dim, label_dim, pooling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.linear:
            x = layer(self.dropout(x))  # (B, T, hidden_dim)
        return self.head(x)
