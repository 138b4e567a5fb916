"""Torch checkpoint files: atomic saves, CPU loads with one-line errors, state dicts unwrapped.

The lowest layer of checkpoint handling, below both the model zoo (which reads published
weights) and `atdr.checkpoint` (the model bundle, which builds models).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

from atdr.atomic import atomic_path
from atdr.errors import AtdrError


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
