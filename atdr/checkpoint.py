"""Checkpoint files: atomic writes, clear errors, and the self-describing model bundle.

A bundle (`best.pt`, `wa.pt`, converted published checkpoints) carries what inference needs
besides the weights — model name and hyper-parameters, front-end, input length, normalisation
and the class list — so `atdr tag` cannot feed a model the wrong features.
"""

from __future__ import annotations

import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from atdr.atomic import atomic_path
from atdr.data.labels import LabelSet
from atdr.errors import AtdrError

BUNDLE_FORMAT = "atdr-model-1"


def _tensor_bytes(obj: Any) -> int:
    """About the size of `obj` saved: the bytes of its tensors."""
    if isinstance(obj, torch.Tensor):
        return obj.untyped_storage().nbytes()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def save(obj: Any, path: str | Path) -> None:
    """torch.save through a temporary file: a kill mid-write never corrupts `path`; a full disk
    is a one-line error with the space needed."""
    with atomic_path(path, _tensor_bytes(obj)) as tmp:
        torch.save(obj, tmp)


def load(path: str | Path) -> Any:
    """Load a checkpoint on the CPU (tensors and plain containers only), or raise AtdrError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AtdrError(f"checkpoint not found: {path}") from None
    except Exception as e:  # torch raises many types for truncated or foreign files
        if not zipfile.is_zipfile(path):  # torch.save writes zip archives; torch's errors mislead here ("101")
            raise AtdrError(f"cannot load checkpoint {path}: not a PyTorch checkpoint file (or a truncated one)") from None
        raise AtdrError(f"cannot load checkpoint {path}: {(str(e).splitlines() or [type(e).__name__])[0]}") from None


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a checkpoint file, unwrapping `{"model": ...}` (DeiT releases) and
    `{"state_dict": ...}` wrappers."""
    state = load(path)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise AtdrError(f"{path} does not hold a state dict")
    return state


@dataclass
class ModelBundle:
    """A trained model and everything needed to feed it."""

    model: str
    params: dict
    frontend: str
    target_length: int
    mean: float
    std: float
    mids: list[str]
    names: list[str]
    state_dict: dict = field(repr=False)
    info: dict = field(default_factory=dict)  # epoch, metrics, provenance

    @property
    def labels(self) -> LabelSet:
        return LabelSet(tuple(self.mids), tuple(self.names))

    def build(self) -> torch.nn.Module:
        """The model with these weights, in eval mode, on the CPU."""
        from atdr.data.features import get_frontend
        from atdr.models import create, without_pretraining

        # The weights are all here: never look for ImageNet/AudioSet pretraining files.
        model = create(self.model, label_dim=len(self.mids), n_mels=get_frontend(self.frontend).n_mels,
                       target_length=self.target_length, **without_pretraining(self.params))
        model.load_state_dict(self.state_dict)
        return model.eval()

    def save(self, path: str | Path) -> None:
        save({"format": BUNDLE_FORMAT, **asdict(self)}, path)

    @classmethod
    def load(cls, path: str | Path) -> ModelBundle:
        doc = load(path)
        if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
            raise AtdrError(f"{path} is not an atdr model checkpoint (convert published ones with `atdr convert-checkpoint`)")
        doc.pop("format")
        return cls(**doc)
