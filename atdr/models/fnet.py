"""`fnet`: FNet (Lee-Thorp et al.) on spectrogram frames, as the original AudioFnet.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from atdr.errors import AtdrError
from atdr.models._registry import Original, register_model
from atdr.models.base import AudioTagger
from atdr.models.convert import rename_keys
from atdr.models.pooling import ClampedAttentionPooling, FramePooling

FNET_HEADS = ("sigmoid", "original")
# The original's FNetInput (`input.`), FNetEncoder (`encoder.layer.N`) and FNetPooler (`pooler.`).
FNET_KEYS = [
    (r"input\.layer_norm\.(.+)", r"input_norm.\1"),
    (r"input\.hidden_mapping\.(.+)", r"input_proj.\1"),
    (r"encoder\.layer\.(.+)", r"layers.\1"),
    (r"pooler\.fc\.(.+)", r"head.fc_prob.\1"),
    (r"pooler\.att\.(.+)", r"head.fc_att.\1"),
]


class FNetLayer(nn.Module):
    """Fourier mixing (real part of the 2-D FFT over time and hidden) + post-norm GELU feed-forward."""

    def __init__(self, hidden_size: int, intermediate_size: int, dropout_rate: float, layer_norm_eps: float) -> None:
        super().__init__()
        self.mixing_layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.feed_forward = nn.Linear(hidden_size, intermediate_size)
        self.output_dense = nn.Linear(intermediate_size, hidden_size)
        self.output_layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In float32 like the original (which turns autocast off here): half-precision FFTs need
        # power-of-2 sizes on GPU.
        mixed = self.mixing_layer_norm(x + torch.fft.fft2(x.float()).real)  # (B, T, H)
        y = self.dropout(self.output_dense(F.gelu(self.feed_forward(mixed))))
        return self.output_layer_norm(mixed + y)


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: FNet) -> dict[str, torch.Tensor]:
    """An original FNet state dict -> ours (FNET_KEYS)."""
    return rename_keys(state_dict, FNET_KEYS)


@register_model(
    "fnet",
    defaults=dict(
        num_hidden_layers=50, hidden_size=256, intermediate_size=512, dropout_rate=0.1, layer_norm_eps=1e-12,
        pooling="att", head="sigmoid",
    ),  # fmt: skip
    frontend="kaldi128",
    description="FNet: Fourier-mixing encoder on frames + pooled frame classifier",
    original=Original(
        "src/models/AudioFnet.py:FNet",
        lambda c: dict(num_hidden_layers=c["num_hidden_layers"], input_size=c["n_mels"], hidden_size=c["hidden_size"],
                       intermediate_size=c["intermediate_size"], fourier="fft", layer_norm_eps=c["layer_norm_eps"],
                       dropout_rate=c["dropout_rate"], num_classes=c["label_dim"]),
        checkpoint_filter_fn,
        fixed=dict(head="original", pooling="att"),
    ),
)
class FNet(AudioTagger):
    """Frames -> LayerNorm -> Linear(n_mels, hidden_size) -> dropout -> `num_hidden_layers`
    FNet layers -> a head. Defaults are the original's `get_default_config` (input 128 mel
    bins, so kaldi128); no recipe of the paper trains it (run-FNET.sh runs AST).

    `head`: `sigmoid` (default) is the shared `FramePooling` (sigmoid frame probabilities,
    `pooling` over time), like the other probability models; `original` is the original
    FNetPooler (`ClampedAttentionPooling`: linear frame scores clamped to [1e-7, 1 - 1e-7],
    attention pooling), with which original checkpoints convert. The default differs from the
    original because a clamped linear score outside [1e-7, 1 - 1e-7] gets no gradient and stays
    stuck.
    """

    output = "probs"

    def __init__(
        self,
        *,
        label_dim: int,
        n_mels: int,
        target_length: int,
        num_hidden_layers: int,
        hidden_size: int,
        intermediate_size: int,
        dropout_rate: float,
        layer_norm_eps: float,
        pooling: str,
        head: str,
    ) -> None:
        super().__init__(label_dim=label_dim, n_mels=n_mels, target_length=target_length)
        if head not in FNET_HEADS:
            raise AtdrError(f"fnet: head must be one of {', '.join(FNET_HEADS)}, got {head!r}")
        if head == "original" and pooling != "att":
            raise AtdrError(f"fnet: head=original pools with attention (pooling=att), got pooling={pooling!r}")
        self.input_norm = nn.LayerNorm(n_mels, eps=layer_norm_eps)
        self.input_proj = nn.Linear(n_mels, hidden_size)
        self.dropout = nn.Dropout(dropout_rate)
        self.layers = nn.ModuleList(
            FNetLayer(hidden_size, intermediate_size, dropout_rate, layer_norm_eps) for _ in range(num_hidden_layers)
        )
        if head == "original":
            self.head = ClampedAttentionPooling(hidden_size, label_dim)
        else:
            self.head = FramePooling(hidden_size, label_dim, pooling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.input_proj(self.input_norm(x)))  # (B, T, H)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)
