"""Map an original checkpoint (published AST or PSLA weights) onto an atdr model.

The key mapping of each family lives in its file (`checkpoint_filter_fn`, registered on the
spec); this module reads, dispatches and checks. `atdr convert-checkpoint` saves the result as
a model bundle (atdr.checkpoint).
"""

from __future__ import annotations

from typing import Any

import torch

from atdr.errors import AtdrError
from atdr.models._registry import create, get_spec, list_specs, without_pretraining
from atdr.models.base import AudioTagger


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

    Raises AtdrError if the model has no converter or the weights do not fit it exactly.
    """
    spec = get_spec(name)
    if spec.checkpoint_filter is None:
        convertible = ", ".join(s.name for s in list_specs() if s.checkpoint_filter)
        raise AtdrError(f"no converter for model {spec.name!r}: original checkpoints convert for {convertible}")
    hparams = without_pretraining(spec.hparams(overrides))
    model = create(
        name, label_dim=label_dim, n_mels=n_mels or spec.n_mels, target_length=target_length or spec.target_length,
        **hparams,
    )  # fmt: skip
    mapped = spec.checkpoint_filter(dict(state_dict), model)
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
            + " (set --n-mels/--target-length/--label-dim/--set as the checkpoint was trained)"
        )
    model.load_state_dict(mapped)
    return model
