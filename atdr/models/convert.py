"""Map a checkpoint of the original code onto an atdr model.

Each family's file holds its mapping (`checkpoint_filter_fn`, on its spec's `Original`), mostly as
`rename_keys` rules; this module holds that shared renaming and does the rest: strips
DataParallel's `module.` prefix, builds the model with the hyper-parameters the original class
always has, and checks that the weights fit it exactly. `atdr convert-checkpoint` saves the
result as a model bundle (atdr.checkpoint) that records the original class and arguments.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

from atdr.errors import AtdrError
from atdr.models._registry import create, get_spec, without_pretraining
from atdr.models.base import AudioTagger

# A rule's new name: a template (`\1` for groups), a function of the match, or None (drop the key).
Rename = str | Callable[[re.Match[str]], str] | None


def rename_keys(state_dict: dict[str, torch.Tensor], rules: Sequence[tuple[str, Rename]]) -> dict[str, torch.Tensor]:
    """`state_dict` with its keys renamed by the first rule whose pattern matches the whole key.

    Keys no rule matches keep their name, so a strict load reports what is not known. Keys that
    land on one name must hold equal values: the original registers some modules twice (TALNet's
    `conv<i>` is `conv.<i-1>`), and a file where the two differ is refused.
    """
    compiled = [(re.compile(pattern), rename) for pattern, rename in rules]
    out: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}
    for key, value in state_dict.items():
        new: str | None = key
        for pattern, rename in compiled:
            if m := pattern.fullmatch(key):
                new = rename(m) if callable(rename) else None if rename is None else m.expand(rename)
                break
        if new is None:
            continue
        if new in out and not torch.equal(out[new], value):
            raise AtdrError(f"checkpoint keys {source[new]} and {key} are one weight ({new}) but hold different values")
        out[new], source[new] = value, key
    return out


def convert_state_dict(
    state_dict: dict[str, torch.Tensor],
    name: str,
    *,
    label_dim: int = 527,
    n_mels: int | None = None,
    target_length: int | None = None,
    **overrides: Any,
) -> AudioTagger:
    """Model `name` (default input size: its front-end's) carrying the original `state_dict`'s weights.

    The hyper-parameters the original class always has (`Original.fixed`, e.g. TAL-trans's
    shared transformer block) are set; overriding them, or weights that do not fit the model
    exactly, raise AtdrError.
    """
    spec = get_spec(name)
    original = spec.original
    for key, value in overrides.items():
        if key in original.fixed and value != original.fixed[key]:
            raise AtdrError(
                f"{original.cls} always has {key}={original.fixed[key]!r}: its checkpoints do not convert with "
                f"{key}={value!r}"
            )
    hparams = without_pretraining(spec.hparams({**original.fixed, **overrides}))
    model = create(
        name, label_dim=label_dim, n_mels=n_mels or spec.n_mels, target_length=target_length or spec.target_length,
        **hparams,
    )  # fmt: skip
    unwrapped = {key.removeprefix("module."): value for key, value in state_dict.items()}
    mapped = original.checkpoint_filter(unwrapped, model)
    ours = model.state_dict()
    missing = sorted(ours.keys() - mapped.keys())
    unexpected = sorted(mapped.keys() - ours.keys())
    mismatched = [
        f"{k} {tuple(mapped[k].shape)} vs {tuple(ours[k].shape)}"
        for k in ours.keys() & mapped.keys()
        if mapped[k].shape != ours[k].shape
    ]
    if missing or unexpected or mismatched:
        raise AtdrError(
            f"checkpoint does not fit {spec.name} with {model.config}: "
            + "; ".join(
                f"{what} ({len(keys)}): {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape", sorted(mismatched)))
                if keys
            )
            + " (give --frontend, --target-length, --labels and --set as the checkpoint was trained)"
        )
    model.load_state_dict(mapped)
    return model
