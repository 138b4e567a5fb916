"""`ast`: the Audio Spectrogram Transformer (Gong et al. 2021), as the original ASTModel.

A DeiT distilled ViT from timm (`self.v`, timm's submodule names) reads overlapping 16x16
patches of the `(freq, time)` spectrogram; the mean of the cls and distillation tokens goes to
`mlp_head` (LayerNorm + Linear). Outputs logits. The original's and the published AST
checkpoints have these names (see `checkpoint_filter_fn`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from atdr.errors import AtdrError
from atdr.models._pretrained import load_pretrained
from atdr.models._registry import Original, register_model
from atdr.models.base import AudioTagger

PATCH = 16
# model_size -> timm architecture, also the name of its ImageNet weights (atdr.download.addresses).
DEIT = {
    "tiny224": "deit_tiny_distilled_patch16_224",
    "small224": "deit_small_distilled_patch16_224",
    "base224": "deit_base_distilled_patch16_224",
    "base384": "deit_base_distilled_patch16_384",
}
# The AudioSet-trained AST (0.4593 mAP): base384, fstride = tstride = 10, 128 x 1024 input.
AUDIOSET_WEIGHTS = "audioset_10_10_0.4593"
AUDIOSET_GRID = (12, 101)


def pretrained_weights(model_size: str, imagenet_pretrain: bool, audioset_pretrain: bool) -> str | None:
    """The published weights an AST starts from (a name of `atdr download weights`), or None."""
    if audioset_pretrain:
        return AUDIOSET_WEIGHTS
    return DEIT[model_size] if imagenet_pretrain else None


def patch_grid(n_mels: int, target_length: int, fstride: int, tstride: int) -> tuple[int, int]:
    """(frequency, time) patches of a 16x16 conv with strides (fstride, tstride)."""
    if n_mels < PATCH or target_length < PATCH:
        raise AtdrError(f"ast needs at least {PATCH} mel bins and {PATCH} frames, got {n_mels} x {target_length}")
    if not (1 <= fstride <= PATCH and 1 <= tstride <= PATCH):
        raise AtdrError(f"ast: fstride and tstride must be in 1..{PATCH}, got {fstride}, {tstride}")
    return (n_mels - PATCH) // fstride + 1, (target_length - PATCH) // tstride + 1


def resize_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """Adapt `(1, 2 + F*T, D)` position embeddings from a `grid` of patches to `new_grid`.

    As the original: the cls and distillation tokens' embeddings are kept; the patch grid is
    adapted time axis first, then frequency, each cut from the middle when it shrinks and
    bilinearly interpolated when it grows.
    """
    tokens, patches = pos_embed[:, :2], pos_embed[:, 2:]
    dim = pos_embed.shape[-1]
    x = patches.transpose(1, 2).reshape(1, dim, *grid)  # (1, D, F, T)
    for axis in (3, 2):
        old, new = x.shape[axis], new_grid[axis - 2]
        if new <= old:
            x = x.narrow(axis, old // 2 - new // 2, new)
        else:
            size = list(x.shape[2:])
            size[axis - 2] = new
            x = F.interpolate(x, size=tuple(size), mode="bilinear")
    return torch.cat([tokens, x.flatten(2).transpose(1, 2)], dim=1)


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: AudioTagger) -> dict[str, torch.Tensor]:
    """An original (or published) AST state dict -> ours: the same names; the unused DeiT heads are dropped."""
    return _strip_published(state_dict)


def _strip_published(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if not key.startswith(("v.head.", "v.head_dist.")):
            out[key] = value
    return out


@register_model(
    "ast",
    defaults=dict(model_size="base384", fstride=4, tstride=4, imagenet_pretrain=False, audioset_pretrain=False),
    frontend="mel64",
    description="AST: DeiT vision transformer on overlapping spectrogram patches",
    original=Original(
        "src/models/ast_models.py:ASTModel",
        lambda c: dict(label_dim=c["label_dim"], fstride=c["fstride"], tstride=c["tstride"], input_fdim=c["n_mels"],
                       input_tdim=c["target_length"], model_size=c["model_size"]),
        checkpoint_filter_fn,
    ),
    original_precision="fp16",  # the original decorates ASTModel.forward with @autocast()
    paper=dict(imagenet_pretrain=True),
)
class ASTModel(AudioTagger):
    """Audio Spectrogram Transformer.

    - `model_size`: tiny224, small224, base224 or base384 (the DeiT it starts from).
    - `fstride`, `tstride`: patch strides; 16 = no overlap, 10 = the AST paper, 4 = this
      paper's "super-resolution" recipe (run.sh: base384, mel64 x 400, ImageNet weights).
    - `imagenet_pretrain`: start from DeiT ImageNet weights, read from the local checkpoint
      directory (see `_pretrained`): the patch kernel summed over RGB, the position
      embeddings adapted by `resize_pos_embed`. Otherwise (the default here, so that nothing
      needs files) a random position embedding, truncated normal std 0.02.
    - `audioset_pretrain`: start from the published AudioSet AST instead (implies ImageNet);
      needs base384, fstride = tstride = 10 and 128 mel bins like that checkpoint, any
      target_length (the time axis of its position embeddings is adapted). As the original,
      `mlp_head` is new (random), for fine-tuning; to use the published model as is, convert
      it with `atdr convert-checkpoint`.
    """

    output = "logits"

    def __init__(
        self,
        *,
        label_dim: int,
        n_mels: int,
        target_length: int,
        model_size: str,
        fstride: int,
        tstride: int,
        imagenet_pretrain: bool,
        audioset_pretrain: bool,
    ) -> None:
        super().__init__(label_dim=label_dim, n_mels=n_mels, target_length=target_length)
        if model_size not in DEIT:
            raise AtdrError(f"ast: model_size must be one of {', '.join(DEIT)}, got {model_size!r}")
        grid = patch_grid(n_mels, target_length, fstride, tstride)
        if audioset_pretrain and (model_size, fstride, tstride, grid[0]) != ("base384", 10, 10, AUDIOSET_GRID[0]):
            raise AtdrError(
                "ast: audioset_pretrain needs model_size=base384, fstride=10, tstride=10 and n_mels=128 "
                f"(the published checkpoint's), got {model_size}, {fstride}, {tstride}, {n_mels}"
            )
        import timm  # here, not at the top: importing timm takes seconds that other models' jobs need not pay
        from timm.layers import trunc_normal_

        arch = DEIT[model_size]
        v = timm.create_model(arch, pretrained=False)
        deit_grid = v.patch_embed.grid_size
        v.reset_classifier(0)  # drop the ImageNet heads
        dim = v.embed_dim
        v.patch_embed.proj = nn.Conv2d(1, dim, PATCH, stride=(fstride, tstride))
        if audioset_pretrain:
            state = {k.removeprefix("v."): w for k, w in _audioset_state().items() if k.startswith("v.")}
            state["pos_embed"] = resize_pos_embed(state["pos_embed"], AUDIOSET_GRID, grid)
        elif imagenet_pretrain:
            state = {k: w for k, w in _deit_state(model_size).items() if not k.startswith(("head.", "head_dist."))}
            state["patch_embed.proj.weight"] = state["patch_embed.proj.weight"].sum(dim=1, keepdim=True)
            state["pos_embed"] = resize_pos_embed(state["pos_embed"], deit_grid, grid)
        else:
            state = None
        v.pos_embed = nn.Parameter(torch.zeros(1, 2 + grid[0] * grid[1], dim))
        if state is None:
            trunc_normal_(v.pos_embed, std=0.02)
        else:
            try:
                v.load_state_dict(state)
            except RuntimeError as e:  # a file of another model
                detail = str(e).splitlines()[-1].strip()
                raise AtdrError(f"ast: pretrained weights do not fit {arch}: {detail}") from None
        self.v = v
        self.grid = grid
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, label_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        x = x.transpose(1, 2).unsqueeze(1)  # (B, 1, F, T)
        x = self.v.patch_embed.proj(x).flatten(2).transpose(1, 2)  # (B, F'*T', D)
        tokens = torch.cat([self.v.cls_token, self.v.dist_token], dim=1).expand(B, -1, -1)  # (B, 2, D)
        x = self.v.pos_drop(torch.cat([tokens, x], dim=1) + self.v.pos_embed)  # (B, 2 + F'*T', D)
        x = self.v.norm(self.v.blocks(x))
        return self.mlp_head((x[:, 0] + x[:, 1]) / 2)  # (B, K)


def _deit_state(model_size: str) -> dict[str, torch.Tensor]:
    return load_pretrained(DEIT[model_size])


def _audioset_state() -> dict[str, torch.Tensor]:
    return _strip_published(load_pretrained(AUDIOSET_WEIGHTS))
