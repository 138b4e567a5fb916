"""TALNet (`tal`, a CRNN) and TAL-trans (`taltrans`, CNN + transformer), sharing one conv front.

Both end with a sigmoid frame classifier pooled over time (pooling.FramePooling) and output
probabilities. The original hard-codes 527 classes; here `label_dim` sets them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from atdr.errors import AtdrError
from atdr.models._registry import Original, register_model
from atdr.models.base import AudioTagger
from atdr.models.convert import rename_keys
from atdr.models.pooling import FRAME_POOLING_KEYS, FramePooling
from atdr.models.transformer import EncoderLayer, init_xavier


def parse_kernel(kernel_size: str) -> tuple[int, int]:
    """"n" or "nxm" (odd sizes) -> (n, n) or (n, m), on (time, freq)."""
    try:
        sizes = tuple(int(k) for k in kernel_size.lower().split("x"))
    except ValueError:
        sizes = ()
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or any(k < 1 or k % 2 == 0 for k in sizes):
        raise AtdrError(f"kernel_size must be 'n' or 'nxm' with odd n, m (e.g. '3', '3x5'), got {kernel_size!r}")
    return sizes


class ConvBlock(nn.Module):
    """Conv (same padding) -> optional BatchNorm -> ReLU -> optional max-pool, on `(B, C, T, F)`."""

    def __init__(
        self, n_in: int, n_out: int, kernel: tuple[int, int], batch_norm: bool, pool: tuple[int, int] | None
    ) -> None:
        super().__init__()
        # The original passes bias=~batch_norm; ~ on a Python bool gives -1 or -2, both truthy,
        # so its convolutions always have a bias, even before BatchNorm. Kept for compatibility.
        self.conv = nn.Conv2d(n_in, n_out, kernel, padding=(kernel[0] // 2, kernel[1] // 2), bias=True)
        self.bn = nn.BatchNorm2d(n_out) if batch_norm else None
        self.pool = pool
        nn.init.xavier_uniform_(self.conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        x = F.relu(x)
        return F.max_pool2d(x, self.pool) if self.pool else x


class ConvFront(nn.Module):
    """TALNet's conv stack: `(B, T, F)` -> `(B, T/4, embedding_size)`.

    `n_pool_layers` pooling layers are spread evenly over `n_conv_layers`; the first two pool
    (2, 2) on (time, freq), later ones (1, 2). Widths keep channels x freq bins at
    2*embedding_size after a plain layer and embedding_size after a pooling layer, so the
    flattened output has exactly embedding_size features per frame. Dropout before every
    conv and after flattening.
    """

    def __init__(
        self,
        *,
        n_mels: int,
        target_length: int,
        embedding_size: int,
        n_conv_layers: int,
        n_pool_layers: int,
        kernel_size: str,
        batch_norm: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        if not 1 <= n_pool_layers <= n_conv_layers or n_conv_layers % n_pool_layers:
            raise AtdrError(
                f"n_pool_layers ({n_pool_layers}) must divide n_conv_layers ({n_conv_layers}) and be at least 1"
            )
        freq_out = n_mels >> n_pool_layers
        if n_mels % 2**n_pool_layers or embedding_size % freq_out:
            raise AtdrError(
                f"the conv front halves the {n_mels} mel bins {n_pool_layers} times: n_mels must be a multiple of "
                f"{2**n_pool_layers} and embedding_size ({embedding_size}) a multiple of the bins left"
            )
        if embedding_size < n_mels // 2:
            raise AtdrError(f"embedding_size ({embedding_size}) must be at least n_mels/2 ({n_mels // 2})")
        time_pools = min(n_pool_layers, 2)
        if target_length < 2**time_pools:
            raise AtdrError(f"target_length ({target_length}) must be at least {2**time_pools} (time is pooled by it)")
        kernel = parse_kernel(kernel_size)
        interval = n_conv_layers // n_pool_layers
        layers, n_in, n_freq = [], 1, n_mels
        for i in range(n_conv_layers):
            if (i + 1) % interval == 0:  # a pooling layer
                n_freq //= 2
                n_out, pool = embedding_size // n_freq, ((2, 2) if i < 2 * interval else (1, 2))
            else:
                n_out, pool = 2 * embedding_size // n_freq, None
            layers.append(ConvBlock(n_in, n_out, kernel, batch_norm, pool))
            n_in = n_out
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)  # (B, 1, T, F)
        for layer in self.layers:
            x = layer(self.dropout(x))  # (B, C, T', F')
        x = x.permute(0, 2, 1, 3).flatten(2)  # (B, T', C*F') = (B, T', E)
        return self.dropout(x)


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """Transformer sinusoidal encoding `(length, dim)`: sin on even, cos on odd columns."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div[: dim // 2])
    return table


# The original's conv stack: the ModuleList `conv`, each block registered a second time as
# `conv<i+1>` (rename_keys rules onto ConvFront).
CONV_KEYS = [
    (r"conv\.(\d+)\.(.+)", r"conv.layers.\1.\2"),
    (r"conv(\d+)\.(.+)", lambda m: f"conv.layers.{int(m[1]) - 1}.{m[2]}"),
]


def _conv_arguments(c: Mapping[str, Any]) -> dict[str, Any]:
    """The original's `args` for the conv stack (run.py turns kernel_size into a tuple)."""
    keys = ("n_mels", "embedding_size", "n_conv_layers", "n_pool_layers", "batch_norm", "dropout", "pooling")
    return {**{k: c[k] for k in keys}, "kernel_size": parse_kernel(c["kernel_size"])}


def tal_checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: TALNet) -> dict[str, torch.Tensor]:
    """An original TALNet state dict -> ours: the conv stack and head renamed, `gru` as is."""
    return rename_keys(state_dict, CONV_KEYS + FRAME_POOLING_KEYS)


def taltrans_checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: TALTrans) -> dict[str, torch.Tensor]:
    """An original TransformerEncoder state dict -> ours: its one `enc_layer` is `layers.0`, its
    positional-encoding buffer (`positional_encoding.pe`) is recomputed here."""
    rules = [(r"enc_layer\.(.+)", r"layers.0.\1"), (r"positional_encoding\.pe", None)]
    return rename_keys(state_dict, CONV_KEYS + FRAME_POOLING_KEYS + rules)


_CONV_DEFAULTS = dict(n_conv_layers=10, n_pool_layers=5, kernel_size="3", batch_norm=True, dropout=0.0, pooling="att")


@register_model(
    "tal",
    defaults=dict(embedding_size=2048, **_CONV_DEFAULTS),
    frontend="kaldi128",
    description="TALNet CRNN: conv stack + bidirectional GRU + pooled frame classifier",
    original=Original("src/models/Net_mModal_mgpu.py:TALNet", _conv_arguments, tal_checkpoint_filter_fn),
    paper={},
)
class TALNet(AudioTagger):
    """TALNet (Wang et al.): `ConvFront`, a bidirectional GRU (embedding_size/2 per direction),
    dropout, `FramePooling`. Paper recipe (run-TAL.sh): embedding 2048, 10 conv / 5 pool,
    kernel 3, batch norm, dropout 0, att pooling, kaldi128 x 1024 frames."""

    output = "probs"

    def __init__(
        self,
        *,
        label_dim: int,
        n_mels: int,
        target_length: int,
        embedding_size: int,
        n_conv_layers: int,
        n_pool_layers: int,
        kernel_size: str,
        batch_norm: bool,
        dropout: float,
        pooling: str,
    ) -> None:
        super().__init__(label_dim=label_dim, n_mels=n_mels, target_length=target_length)
        if embedding_size % 2:
            raise AtdrError(f"tal: embedding_size must be even (two GRU directions), got {embedding_size}")
        self.conv = ConvFront(
            n_mels=n_mels, target_length=target_length, embedding_size=embedding_size, n_conv_layers=n_conv_layers,
            n_pool_layers=n_pool_layers, kernel_size=kernel_size, batch_norm=batch_norm, dropout=dropout,
        )  # fmt: skip
        self.gru = nn.GRU(embedding_size, embedding_size // 2, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.head = FramePooling(embedding_size, label_dim, pooling)
        for name, p in self.gru.named_parameters():
            if name.startswith("weight"):
                nn.init.orthogonal_(p)
            else:
                nn.init.zeros_(p)
        self.head.init_xavier()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # (B, T', E)
        x, _ = self.gru(x)  # (B, T', E)
        return self.head(self.dropout(x))


@register_model(
    "taltrans",
    defaults=dict(
        embedding_size=1024, **_CONV_DEFAULTS, n_trans_layers=2, addpos=True, transformer_dropout=0.75,
        share_trans_weights=True,
    ),  # fmt: skip
    frontend="mel64",
    description="TAL-trans: TALNet's conv stack + transformer encoder + pooled frame classifier",
    original=Original(
        "src/models/Net_mModal_mgpu.py:TransformerEncoder",
        lambda c: dict(_conv_arguments(c), n_trans_layers=c["n_trans_layers"], addpos=c["addpos"],
                       transformer_dropout=c["transformer_dropout"], target_length=c["target_length"]),
        taltrans_checkpoint_filter_fn,
        fixed=dict(share_trans_weights=True),
    ),
    paper={},
)
class TALTrans(AudioTagger):
    """TAL-trans (the original `TransformerEncoder`): `ConvFront`, `n_trans_layers` post-norm
    encoder layers (8 heads, feed-forward width embedding_size, dropout
    `transformer_dropout`), dropout, `FramePooling`.

    `addpos`: the input becomes `8 * x + PE`, PE a sinusoidal table indexed by frame with one
    column per mel bin (max length target_length).
    `share_trans_weights=True` is the original code: ONE encoder layer applied
    `n_trans_layers` times, and what the paper recipe (run-TALtrans.sh: embedding 1024,
    10 conv / 5 pool, 2 layers, addpos, transformer_dropout 0.75, mel64 x 400) trained;
    False gives `n_trans_layers` layers of their own.
    """

    output = "probs"

    def __init__(
        self,
        *,
        label_dim: int,
        n_mels: int,
        target_length: int,
        embedding_size: int,
        n_conv_layers: int,
        n_pool_layers: int,
        kernel_size: str,
        batch_norm: bool,
        dropout: float,
        pooling: str,
        n_trans_layers: int,
        addpos: bool,
        transformer_dropout: float,
        share_trans_weights: bool,
    ) -> None:
        super().__init__(label_dim=label_dim, n_mels=n_mels, target_length=target_length)
        if n_trans_layers < 1:
            raise AtdrError(f"taltrans: n_trans_layers must be >= 1, got {n_trans_layers}")
        self.conv = ConvFront(
            n_mels=n_mels, target_length=target_length, embedding_size=embedding_size, n_conv_layers=n_conv_layers,
            n_pool_layers=n_pool_layers, kernel_size=kernel_size, batch_norm=batch_norm, dropout=dropout,
        )  # fmt: skip
        self.addpos = addpos
        if addpos:
            self.register_buffer("pos", sinusoid_table(target_length, n_mels), persistent=False)
        self.n_trans_layers = n_trans_layers
        self.share_trans_weights = share_trans_weights
        n_layers = 1 if share_trans_weights else n_trans_layers
        self.layers = nn.ModuleList(
            EncoderLayer(embedding_size, embedding_size, transformer_dropout) for _ in range(n_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = FramePooling(embedding_size, label_dim, pooling)
        init_xavier(self, self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.addpos:
            x = x * 8 + self.pos[: x.shape[1]]  # (B, T, F)
        x = self.conv(x)  # (B, T', E)
        for i in range(self.n_trans_layers):
            x = self.layers[0 if self.share_trans_weights else i](x)
        return self.head(self.dropout(x))
