"""The original's post-norm transformer encoder layer, and `transformer`: a pure transformer tagger.

`EncoderLayer` is shared with `taltrans` (tal.py). Submodule names follow the original
(`slf_attn.w_qs`, `pos_ffn.w_1`, ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from atdr.errors import AtdrError
from atdr.models._registry import Original, register_model
from atdr.models.base import AudioTagger
from atdr.models.convert import rename_keys
from atdr.models.pooling import FRAME_POOLING_KEYS, FramePooling

N_HEADS = 8


class MultiHeadAttention(nn.Module):
    """8-head self-attention with dropout on the attention weights, then post-norm residual:
    `LayerNorm(x + dropout(fc(attention(x))))`. Head size `d_model // 8`."""

    def __init__(self, d_model: int, dropout: float) -> None:
        super().__init__()
        self.d_k = d_model // N_HEADS
        self.w_qs = nn.Linear(d_model, N_HEADS * self.d_k)
        self.w_ks = nn.Linear(d_model, N_HEADS * self.d_k)
        self.w_vs = nn.Linear(d_model, N_HEADS * self.d_k)
        self.fc = nn.Linear(N_HEADS * self.d_k, d_model)
        self.layer_norm = nn.LayerNorm(d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = (w(x).view(B, T, N_HEADS, self.d_k).transpose(1, 2) for w in (self.w_qs, self.w_ks, self.w_vs))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)  # (B, H, T, d_k)
        y = y.transpose(1, 2).reshape(B, T, N_HEADS * self.d_k)  # (B, T, H*d_k)
        return self.layer_norm(x + F.dropout(self.fc(y), self.dropout, self.training))


class PositionwiseFeedForward(nn.Module):
    """`LayerNorm(x + dropout(w_2(relu(w_1(x)))))`."""

    def __init__(self, d_model: int, d_inner: int, dropout: float) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_inner)
        self.w_2 = nn.Linear(d_inner, d_model)
        self.layer_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(x + self.dropout(self.w_2(F.relu(self.w_1(x)))))


class EncoderLayer(nn.Module):
    """Self-attention then feed-forward, each post-norm: `(B, T, d_model)` -> same."""

    def __init__(self, d_model: int, d_inner: int, dropout: float) -> None:
        super().__init__()
        if d_model < N_HEADS:
            raise AtdrError(f"transformer width {d_model} is smaller than its {N_HEADS} heads")
        self.slf_attn = MultiHeadAttention(d_model, dropout)
        self.pos_ffn = PositionwiseFeedForward(d_model, d_inner, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pos_ffn(self.slf_attn(x))


def init_xavier(model: nn.Module, head: FramePooling) -> None:
    """The transformer models' init: Xavier-uniform on every weight matrix/kernel, zero head biases."""
    for p in model.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    head.init_xavier()


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: Transformer) -> dict[str, torch.Tensor]:
    """An original Transformer state dict -> ours: the same names but for the head's."""
    return rename_keys(state_dict, FRAME_POOLING_KEYS)


@register_model(
    "transformer",
    defaults=dict(embedding_size=1024, n_trans_layers=2, dropout=0.0, pooling="att"),
    frontend="mel64",
    description="Transformer: linear embedding + post-norm encoder layers, max-pool time /4, pooled frame classifier",
    original=Original(
        "src/models/Net_mModal_mgpu.py:Transformer",
        lambda c: {k: c[k] for k in ("n_mels", "embedding_size", "n_trans_layers", "dropout", "pooling")},
        checkpoint_filter_fn,
    ),
)
class Transformer(AudioTagger):
    """The original `Transformer`: `linear_in` + LayerNorm embeds each frame, `n_trans_layers`
    encoder layers (feed-forward width 2*embedding_size, no positional encoding), max-pooling
    over time by 4, then `FramePooling`. Not in the paper's recipes; defaults are run.py's
    except pooling (att, as every recipe sets)."""

    output = "probs"

    def __init__(
        self,
        *,
        label_dim: int,
        n_mels: int,
        target_length: int,
        embedding_size: int,
        n_trans_layers: int,
        dropout: float,
        pooling: str,
    ) -> None:
        super().__init__(label_dim=label_dim, n_mels=n_mels, target_length=target_length)
        if target_length < 4:
            raise AtdrError(f"transformer max-pools time by 4: target_length must be >= 4, got {target_length}")
        self.linear_in = nn.Linear(n_mels, embedding_size)
        self.layer_norm_in = nn.LayerNorm(embedding_size)
        self.layer_stack = nn.ModuleList(
            EncoderLayer(embedding_size, 2 * embedding_size, dropout) for _ in range(n_trans_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = FramePooling(embedding_size, label_dim, pooling)
        init_xavier(self, self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.layer_norm_in(self.linear_in(x)))  # (B, T, E)
        for layer in self.layer_stack:
            x = layer(x)
        x = F.max_pool1d(self.dropout(x).transpose(1, 2), 4).transpose(1, 2)  # (B, T/4, E)
        return self.head(x)
