"""PSLA's CNNs with attention pooling (Gong et al. 2021): `psla` (alias `efficientnet`) and `resnet`.

Backbones from timm; the pooling head is pooling.AttentionPooling. Both average the frequency
axis of the last feature map (`resnet` can also take the original's reshape instead), then pool
over time, and output probabilities.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from atdr.errors import AtdrError
from atdr.models._registry import Original, register_model
from atdr.models.base import AudioTagger
from atdr.models.pooling import AttentionPooling, attention_from_original

# efficientnet_pytorch builds EfficientNet-B{n} for a fixed image size and pads each stride-2
# conv for that size ("static same padding"); PSLA trained with it on spectrograms.
IMAGE_SIZE = (224, 240, 260, 300, 380, 456, 528, 600)


class StaticPadConv2d(nn.Conv2d):
    """Conv2d after a fixed zero padding `(left, right, top, bottom)` (efficientnet_pytorch's
    Conv2dStaticSamePadding)."""

    def __init__(self, conv: nn.Conv2d, pad: tuple[int, int, int, int]) -> None:
        super().__init__(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
            dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
        )  # fmt: skip
        self.static_pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.static_pad))


def _static_padding(net: nn.Module, image_size: int) -> list[StaticPadConv2d]:
    """Give the stride-2 convs of a timm EfficientNet the padding efficientnet_pytorch computes
    for square `image_size` images (stride-1 convs pad symmetrically in both). Returns them in order."""
    convs, size = [], image_size
    for parent, name in [(net, "conv_stem")] + [(block, "conv_dw") for stage in net.blocks for block in stage]:
        conv = getattr(parent, name)
        (k, _), (s, _) = conv.kernel_size, conv.stride
        if s > 1:
            out = -(-size // s)
            pad = max((out - 1) * s + k - size, 0)
            conv = StaticPadConv2d(conv, (pad // 2, pad - pad // 2) * 2)
            setattr(parent, name, conv)
            convs.append(conv)
            size = out
    return convs


def _output_size(size: int, convs: list[StaticPadConv2d]) -> int:
    """Feature-map size along one axis after the strided convs (< 1: the input is too small)."""
    for conv in convs:
        size = (size + sum(conv.static_pad[:2]) - conv.kernel_size[0]) // conv.stride[0] + 1
    return size


# --- PSLA checkpoints (efficientnet_pytorch key layout) -> ours -------------------------------

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
_SE = {"_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand"}
# MBConv with an expansion conv (timm InvertedResidual) / without (timm DepthwiseSeparableConv).
_EXPANDED = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
    "_project_conv": "conv_pwl", "_bn2": "bn3", **_SE,
}  # fmt: skip
_DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2", **_SE}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(.+)")


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: EffNetAttention) -> dict[str, torch.Tensor]:
    """A PSLA EffNetAttention state dict (`effnet._blocks.N._depthwise_conv...`, `attention.att.N`
    1x1 convs) -> ours. Keys it does not know pass through unchanged, so a strict load reports them."""
    blocks = [
        (f"{s}.{i}", _EXPANDED if hasattr(block, "conv_pwl") else _DEPTHWISE)
        for s, stage in enumerate(model.effnet.blocks)
        for i, block in enumerate(stage)
    ]
    out = {}
    for key, value in state_dict.items():
        if key.startswith("effnet._fc."):
            continue
        if key.startswith("effnet."):
            key = "effnet." + _effnet_key(key.removeprefix("effnet."), blocks)
        else:
            key, value = attention_from_original(key, value)
        out[key] = value
    return out


def _effnet_key(key: str, blocks: list[tuple[str, dict[str, str]]]) -> str:
    if m := _BLOCK_KEY.fullmatch(key):
        index, module, rest = int(m.group(1)), m.group(2), m.group(3)
        if index < len(blocks) and module in blocks[index][1]:
            return f"blocks.{blocks[index][0]}.{blocks[index][1][module]}.{rest}"
        return key
    module, _, rest = key.partition(".")
    return f"{_TOP[module]}.{rest}" if module in _TOP else key


@register_model(
    "psla",
    aliases=("efficientnet",),
    defaults=dict(eff_b=2, att_head=4, att_activation="softmax", bn_momentum=0.01),
    frontend="kaldi128",
    description="PSLA: EfficientNet + multi-head attention pooling",
    original=Original(
        "src/models/pslaModels.py:EffNetAttention",
        lambda c: dict(att_act=c["att_activation"], label_dim=c["label_dim"], b=c["eff_b"], head_num=c["att_head"]),
        checkpoint_filter_fn,
    ),
    paper={},
)
class EffNetAttention(AudioTagger):
    """EfficientNet-B{eff_b} (timm `tf_efficientnet_b*`, 1 input channel) on the `(freq, time)`
    spectrogram, mean over the frequency axis, then `AttentionPooling(att_head, att_activation)`.

    Matches PSLA's `efficientnet_pytorch` backbone: the same static padding (computed for the
    ImageNet image size of B{eff_b}; timm's dynamic "same" padding differs from it on B1-B7),
    BatchNorm eps 1e-3 / momentum 0.01, drop-connect 0.2 and PyTorch's default init, so
    converted PSLA checkpoints give the same outputs. With momentum 0.01 the BatchNorm running
    statistics need thousands of steps to settle: raise `bn_momentum` (e.g. 0.1) for short runs.
    PSLA's AvgPool2d((4, 1)) averages the 4 frequency rows left of 128 mel bins, i.e. this mean;
    the mean also works for other sizes. Paper recipe (run-psla.sh): B2, 4 heads, softmax,
    kaldi128 x 1024 frames, no ImageNet weights.
    """

    output = "probs"

    def __init__(
        self,
        *,
        label_dim: int,
        n_mels: int,
        target_length: int,
        eff_b: int,
        att_head: int,
        att_activation: str,
        bn_momentum: float,
    ) -> None:
        super().__init__(label_dim=label_dim, n_mels=n_mels, target_length=target_length)
        if not 0 < bn_momentum <= 1:
            raise AtdrError(f"psla: bn_momentum must be in (0, 1], got {bn_momentum}")
        if not 0 <= eff_b < len(IMAGE_SIZE):
            raise AtdrError(f"psla: eff_b must be 0..{len(IMAGE_SIZE) - 1}, got {eff_b}")
        import timm  # here: importing it takes seconds that other models' jobs need not pay

        self.effnet = timm.create_model(
            f"tf_efficientnet_b{eff_b}", pretrained=False, in_chans=1, num_classes=0, global_pool="",
            drop_path_rate=0.2, bn_momentum=bn_momentum,
        )  # fmt: skip
        convs = _static_padding(self.effnet, IMAGE_SIZE[eff_b])
        for m in self.effnet.modules():  # efficientnet_pytorch keeps PyTorch's default init
            if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
                m.reset_parameters()
        for axis, size in (("n_mels", n_mels), ("target_length", target_length)):
            if _output_size(size, convs) < 1:
                raise AtdrError(f"psla: {axis}={size} is too small for EfficientNet-B{eff_b} (it downsamples by 32)")
        self.attention = AttentionPooling(self.effnet.num_features, label_dim, att_head, att_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.effnet.forward_features(x.transpose(1, 2).unsqueeze(1))  # (B, C, F', T')
        return self.attention(x.mean(dim=2).transpose(1, 2))  # (B, T', C) -> (B, K)


# The original ResNetAttention attends over 832 channels: ResNet-50's output on 64 mel bins x
# 385-416 frames, 2048 x 2 x 13 values, reshaped to (832, 4, 16). (For 128 mel bins it reshapes to
# 2048 channels, which its 832-channel attention cannot take: that model does not run.)
ORIGINAL_RESHAPE = (832, 4, 16)
RESNET_HEADS = ("mean", "original")


def _check_original_head(depth: int, n_mels: int, target_length: int) -> None:
    frames = -(-target_length // 32)  # ResNet's output frames: /32, rounded up
    if (depth, n_mels, frames) != (50, 64, 13):
        raise AtdrError(
            "resnet: head=original (the original's reshape of the ResNet-50 output to 832 x 4 x 16) is defined for "
            f"depth 50 on 64 mel bins x 385-416 frames only, got depth {depth}, {n_mels} x {target_length} "
            "(head=mean takes any size)"
        )


def resnet_checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: ResNetAttention) -> dict[str, torch.Tensor]:
    """An original ResNetAttention state dict -> ours: its torchvision ResNet-50 (`model.`) has
    timm's names already; its `attention.att`/`attention.cla` 1x1 convs become linear layers."""
    return dict(attention_from_original(key, value) for key, value in state_dict.items())


@register_model(
    "resnet",
    defaults=dict(depth=50, att_activation="softmax", head="mean"),
    frontend="mel64",
    description="PSLA ResNet-50 (depth 18-152) + single-head attention pooling",
    original=Original(
        "src/models/pslaModels.py:ResNetAttention",
        lambda c: dict(n_class=c["label_dim"], n_mels=c["n_mels"], target_length=c["target_length"],
                       att_activation=c["att_activation"]),
        resnet_checkpoint_filter_fn,
        fixed=dict(depth=50, head="original"),
    ),
    paper=dict(head="original"),
)
class ResNetAttention(AudioTagger):
    """ResNet-`depth` (timm, 1 input channel; the paper: 50) on the `(freq, time)` spectrogram,
    then single-head `AttentionPooling` over one of two inputs (`head`):

    - `mean` (default): the last feature map averaged over frequency, attention over time
      (2048 channels for ResNet-50); any input size.
    - `original`: the original ResNetAttention's. The flattened ResNet-50 output
      (2048 x 2 x 13 values) is reshaped to `(832, 4, 16)`, mixing channels, frequency and
      time, averaged over the axis of 4, and attended over the axis of 16. Defined where the
      original runs: ResNet-50 on 64 mel bins x 385-416 frames (the paper's recipe: 400);
      original checkpoints convert with it.

    Initialised as the original: torchvision's ResNet init (timm's is the same), except the
    1-channel first convolution, a new `nn.Conv2d` there (PyTorch's default init). Paper recipe
    (run-psla-res.sh): softmax attention, head original, mel64 x 400, no ImageNet weights.
    """

    output = "probs"

    def __init__(
        self, *, label_dim: int, n_mels: int, target_length: int, depth: int, att_activation: str, head: str
    ) -> None:
        super().__init__(label_dim=label_dim, n_mels=n_mels, target_length=target_length)
        if depth not in (18, 34, 50, 101, 152):
            raise AtdrError(f"resnet: depth must be 18, 34, 50, 101 or 152, got {depth}")
        if head not in RESNET_HEADS:
            raise AtdrError(f"resnet: head must be one of {', '.join(RESNET_HEADS)}, got {head!r}")
        import timm  # here: importing it takes seconds that other models' jobs need not pay

        self.model = timm.create_model(
            f"resnet{depth}", pretrained=False, in_chans=1, num_classes=0, global_pool="", zero_init_last=False
        )
        self.model.conv1.reset_parameters()
        self.original_head = head == "original"
        if self.original_head:
            _check_original_head(depth, n_mels, target_length)
        channels = ORIGINAL_RESHAPE[0] if self.original_head else self.model.num_features
        self.attention = AttentionPooling(channels, label_dim, 1, att_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.model.forward_features(x.transpose(1, 2).unsqueeze(1))  # (B, 2048, F', T')
        if self.original_head:
            x = x.reshape(x.shape[0], *ORIGINAL_RESHAPE)  # (B, 832, 4, 16)
        return self.attention(x.mean(dim=2).transpose(1, 2))  # (B, T', C) -> (B, K)
