"""`fnet`: FNet (Lee-Thorp et al.) on spectrogram frames, as the original AudioFnet.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from atdr.models._registry import register_model
from atdr.models.base import AudioTagger
from atdr.models.pooling import FramePooling


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


@register_model(
    "fnet",
    defaults=dict(
        num_hidden_layers=50, hidden_size=256, intermediate_size=512, dropout_rate=0.1, layer_norm_eps=1e-12,
        pooling="att",
    ),  # fmt: skip
    frontend="kaldi128",
    description="FNet: Fourier-mixing encoder on frames + pooled frame classifier",
)
class FNet(AudioTagger):
    """Frames -> LayerNorm -> Linear(n_mels, hidden_size) -> dropout -> `num_hidden_layers`
    FNet layers -> `FramePooling`. Defaults are the original's `get_default_config` (input 128
    mel bins, so kaldi128); no recipe of the paper trains it (run-FNET.sh runs AST).

    Head, a deliberate change: the original FNetPooler clamps the *linear* frame outputs to
    [1e-7, 1 - 1e-7] (no sigmoid) before attention pooling. Its output is in [0, 1], but every
    frame score outside that range gets zero gradient and stays stuck. Here the head is the
    shared `FramePooling` (sigmoid frame probabilities, softmax attention over time), like
    the other probability models.
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
    ) -> None:
        super().__init__(label_dim=label_dim, n_mels=n_mels, target_length=target_length)
        self.input_norm = nn.LayerNorm(n_mels, eps=layer_norm_eps)
        self.input_proj = nn.Linear(n_mels, hidden_size)
        self.dropout = nn.Dropout(dropout_rate)
        self.layers = nn.ModuleList(
            FNetLayer(hidden_size, intermediate_size, dropout_rate, layer_norm_eps) for _ in range(num_hidden_layers)
        )
        self.head = FramePooling(hidden_size, label_dim, pooling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.input_proj(self.input_norm(x)))  # (B, T, H)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)
