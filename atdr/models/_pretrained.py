"""Published weights (ImageNet DeiT, AudioSet AST) read from a local directory; never downloaded here.

The directory is `$ATDR_CHECKPOINTS`, by default `resources/checkpoints/` (relative to the
working directory); `atdr download weights NAME` (or the workflow) puts `NAME.pth` there. A
missing file is an AtdrError naming the file, the directory, the command and the URL.
"""

from __future__ import annotations

import torch

from atdr.download.weights import ENV_VAR, checkpoint_dir
from atdr.errors import AtdrError
from atdr.torchfile import load_state_dict


def load_pretrained(name: str) -> dict[str, torch.Tensor]:
    """The state dict of the published weights `name` (see `atdr.download.addresses.WEIGHTS`) in
    `checkpoint_dir()/name.pth`; unwraps `{"model": state_dict}` (DeiT releases)."""
    from atdr.download.addresses import WEIGHTS

    directory = checkpoint_dir()
    path = directory / f"{name}.pth"
    if not path.is_file():
        raise AtdrError(
            f"pretrained weights {path.name} not found in {directory}/ (set {ENV_VAR} to change the directory): "
            f"run `atdr download weights {name}`, or download {WEIGHTS[name].url} and save it there as {path.name}"
        )
    return load_state_dict(path)
