"""Published weights (ImageNet DeiT, AudioSet AST) read from a local directory; never downloaded.

The directory is `$ATDR_CHECKPOINTS`, by default `resources/checkpoints/` (relative to the
working directory). A missing file is an AtdrError naming the file, the directory and the URL.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from atdr.errors import AtdrError
from atdr.torchfile import load_state_dict

ENV_VAR = "ATDR_CHECKPOINTS"
DEFAULT_DIR = "resources/checkpoints"


def checkpoint_dir() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)


def load_pretrained(filename: str, url: str) -> dict[str, torch.Tensor]:
    """The state dict in `checkpoint_dir()/filename`; unwraps `{"model": state_dict}` (DeiT releases)."""
    directory = checkpoint_dir()
    path = directory / filename
    if not path.is_file():
        raise AtdrError(
            f"pretrained weights {filename} not found in {directory}/ (set {ENV_VAR} to change the directory): "
            f"download {url} and save it there as {filename}"
        )
    return load_state_dict(path)
