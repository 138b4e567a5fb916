"""Published pretrained weights into the checkpoint folder (`resources/checkpoints/` or
`$ATDR_CHECKPOINTS`), where the models read them (`atdr.models._pretrained`).

`NAME.pth` is fetched once and verified against its published checksum (for DeiT the sha256
prefix in the release's file name). A file already there is verified, not fetched again; a wrong
checksum is an error naming the file and both sums. The AudioSet AST checkpoints have no
published checksum: their first download's sha256 is recorded in `NAME.pth.sha256` and later
runs check the file against it. Every file must load as a plain state dict
(`torch.load(weights_only=True)`, through `atdr.checkpoint`) before it is accepted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from atdr.atomic import write_text
from atdr.download.addresses import WEIGHTS, Digest, Weights
from atdr.download.http import fetch, file_digest
from atdr.errors import AtdrError

log = logging.getLogger(__name__)

ENV_VAR = "ATDR_CHECKPOINTS"
DEFAULT_DIR = "resources/checkpoints"


def checkpoint_dir() -> Path:
    """The checkpoint folder: `$ATDR_CHECKPOINTS`, by default `resources/checkpoints` (relative to
    the working directory). Light to import: the workflow reads it at start-up."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)


def lookup(name: str) -> Weights:
    if name not in WEIGHTS:
        raise AtdrError(f"unknown weights {name!r}; known: {', '.join(WEIGHTS)}")
    return WEIGHTS[name]


def required(model: str, params: Mapping[str, Any]) -> list[str]:
    """The published weights a model with these hyper-parameters starts from (names in WEIGHTS)."""
    from atdr.models import get_spec
    from atdr.models.ast import pretrained_weights

    spec = get_spec(model)
    if spec.name != "ast":
        return []
    hp = spec.hparams(params)
    name = pretrained_weights(hp["model_size"], hp["imagenet_pretrain"], hp["audioset_pretrain"])
    return [name] if name else []


def fetch_weights(name: str, directory: str | Path, *, url: str | None = None, digest: Digest | None = None,
                  tries: int = 5, wait: float = 2.0, progress: bool = True) -> Path:
    """`directory/NAME.pth`, downloaded and verified unless it is there and valid."""
    from atdr.torchfile import load_state_dict

    weights = lookup(name)
    path = Path(directory) / f"{name}.pth"
    recorded = path.with_name(path.name + ".sha256")
    digest = digest or weights.digest
    if digest is None and recorded.is_file():
        digest = Digest("sha256", recorded.read_text().split()[0])
    fresh = not path.is_file()
    fetch(url or weights.url, path, digest, tries=tries, wait=wait, progress=progress)
    if fresh:
        try:
            load_state_dict(path)  # weights_only=True: tensors and plain containers, nothing executed
        except AtdrError as e:
            path.unlink()
            raise AtdrError(f"{name}: the downloaded file is not a checkpoint ({e}); deleted") from None
    if digest is None:
        sha = file_digest(path)
        write_text(recorded, f"{sha}  {path.name}\n")
        log.warning("%s: no published checksum; recorded its sha256 %s in %s and will check it from now on",
                    name, sha, recorded)
    log.info("%s: %s", name, path)
    return path
