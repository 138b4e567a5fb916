"""Classification heads that pool over time: frame features `(B, T, D)` -> clip probabilities `(B, K)`.

- `FramePooling`: TALNet's head (tal, taltrans, transformer, linear, fnet): a sigmoid frame
  classifier, then one of the pooling functions in `POOLINGS`.
- `ClampedAttentionPooling`: the original FNet's head (fnet with `head: original`).
- `AttentionPooling`: PSLA's attention pooling (psla/efficientnet, resnet).

Each comes with the mapping of the original code's parameter names onto it.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from atdr.errors import AtdrError

POOLINGS = ("max", "ave", "lin", "exp", "att")
ACTIVATIONS = ("sigmoid", "softmax", "relu", "linear")
EPS = 1e-7
# The original's frame classifier and attention layers (TALNet, TransformerEncoder, Transformer,
# LinearModel) sit on the model itself; here on its `head` (rename_keys rules).
FRAME_POOLING_KEYS = [(r"fc_(prob|att)\.(weight|bias)", r"head.fc_\1.\2")]


class FramePooling(nn.Module):
    """Frame probabilities `sigmoid(fc_prob(x))`, clamped to [EPS, 1-EPS], pooled over time.

    max, ave (mean), lin (linear softmax: sum p^2 / sum p), exp (exponential softmax:
    sum p e^p / sum e^p) or att (weights softmax(fc_att(x)) over time).
    """

    def __init__(self, dim: int, label_dim: int, pooling: str) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise AtdrError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.pooling = pooling
        self.fc_prob = nn.Linear(dim, label_dim)
        self.fc_att = nn.Linear(dim, label_dim) if pooling == "att" else None

    def init_xavier(self) -> None:
        """The TAL family's init: Xavier-uniform weights, zero biases."""
        for fc in (self.fc_prob, self.fc_att):
            if fc is not None:
                nn.init.xavier_uniform_(fc.weight)
                nn.init.zeros_(fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(self.fc_prob(x)).clamp(EPS, 1 - EPS)  # (B, T, K)
        if self.pooling == "max":
            return p.amax(dim=1)
        if self.pooling == "ave":
            return p.mean(dim=1)
        if self.pooling == "lin":
            return (p * p).sum(dim=1) / p.sum(dim=1)
        if self.pooling == "exp":
            w = p.exp()
            return (p * w).sum(dim=1) / w.sum(dim=1)
        return (p * torch.softmax(self.fc_att(x), dim=1)).sum(dim=1)


class ClampedAttentionPooling(nn.Module):
    """The original FNet's head (FNetPooler): linear frame scores `fc_prob(x)` clamped to
    [EPS, 1-EPS], no sigmoid (a score outside that range gets no gradient); attention weights
    `softmax(fc_att(x))` over time, clamped to [EPS, 1-EPS] and renormalised."""

    def __init__(self, dim: int, label_dim: int) -> None:
        super().__init__()
        self.fc_prob = nn.Linear(dim, label_dim)
        self.fc_att = nn.Linear(dim, label_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.fc_prob(x).clamp(EPS, 1 - EPS)  # (B, T, K)
        a = torch.softmax(self.fc_att(x), dim=1).clamp(EPS, 1 - EPS)
        a = a / a.sum(dim=1, keepdim=True)
        return (p * a).sum(dim=1)


def _activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "sigmoid":
        return torch.sigmoid(x)
    if activation == "softmax":  # over classes, as PSLA (its dim=1 is the class axis)
        return torch.softmax(x, dim=-1)
    if activation == "relu":
        return F.relu(x)
    return x


class AttentionPooling(nn.Module):
    """PSLA's attention pooling (HigherModels.py: MHeadAttention, Attention, MeanPooling).

    Per head h: attention `a = clamp(act(att_h(x)), EPS, 1-EPS)` normalised over time, class
    scores `c = act(cla_h(x))`, output `sum_t a * c`; `heads` > 1 sums the heads with learnt
    weights (init 1/heads). `heads` = 1: one head, no weight. `heads` = 0: mean over time of
    `sigmoid(cla(x))` (PSLA's MeanPooling uses sigmoid whatever the activation).
    The original's 1x1 convolutions are linear layers here (same weights, flattened).
    Outputs are probabilities for sigmoid and softmax activations.
    """

    def __init__(self, dim: int, label_dim: int, heads: int, activation: str) -> None:
        super().__init__()
        if isinstance(heads, bool) or not isinstance(heads, int) or heads < 0:
            raise AtdrError(f"att_head must be an integer >= 0 (0 = mean pooling), got {heads!r}")
        if activation not in ACTIVATIONS:
            raise AtdrError(f"att_activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        self.cla = nn.ModuleList(nn.Linear(dim, label_dim) for _ in range(max(heads, 1)))
        self.att = nn.ModuleList(nn.Linear(dim, label_dim) for _ in range(heads))
        self.head_weight = nn.Parameter(torch.full((heads,), 1.0 / heads)) if heads > 1 else None
        if heads <= 1:  # PSLA's init_layer for Attention/MeanPooling; MHeadAttention keeps the default
            for fc in (*self.cla, *self.att):
                nn.init.kaiming_uniform_(fc.weight)  # U(-sqrt(6/fan_in), sqrt(6/fan_in))
                nn.init.zeros_(fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.att:  # mean pooling
            return torch.sigmoid(self.cla[0](x)).mean(dim=1)
        outs = []
        for att, cla in zip(self.att, self.cla):
            a = _activate(att(x), self.activation).clamp(EPS, 1 - EPS)  # (B, T, K)
            a = a / a.sum(dim=1, keepdim=True)
            outs.append((a * _activate(cla(x), self.activation)).sum(dim=1))  # (B, K)
        if self.head_weight is None:
            return outs[0]
        return (torch.stack(outs, dim=-1) * self.head_weight).sum(dim=-1)


_ATTENTION_KEY = re.compile(r"attention\.(att|cla)\.(?:(\d+)\.)?(weight|bias)")


def attention_from_original(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    """One key of PSLA's attention modules onto `AttentionPooling` (named `attention`): the 1x1
    convolutions `attention.att[.N]`, `attention.cla[.N]` (no `.N`: one head or mean pooling)
    become linear layers `attention.att.N`; other keys pass unchanged."""
    if m := _ATTENTION_KEY.fullmatch(key):
        kind, head, param = m.groups()
        return f"attention.{kind}.{head or 0}.{param}", value.flatten(1) if param == "weight" else value
    return key, value
