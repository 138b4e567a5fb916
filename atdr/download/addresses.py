"""Every address atdr downloads from, in one place, with the checksums their publishers give.

Redirection, for a mirror or for tests:
- `$ATDR_MIRROR` (a base URL): every address `https://HOST/PATH?QUERY` is fetched from
  `$ATDR_MIRROR/HOST/PATH` instead, so a mirror is a plain copy of the files under folders
  named after their hosts. Checksums still apply, so a mirror cannot change what is downloaded.
- `$ATDR_YOUTUBE_URL` (a template with `{ytid}`): where AudioSet clips are looked up, by
  default `https://www.youtube.com/watch?v={ytid}` (`atdr download audioset --url-template`).
- Each source also takes an explicit `--url` (and `--sha256`/`--md5`) on the command line.

Checksums are what the publishers (or a widely used loader that pins the same file) state; none
is computed here. Where only a prefix is published (DeiT releases: the first 8 hex digits of the
sha256 in the file name, as torch.hub's `check_hash`), the prefix is checked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

MIRROR_ENV = "ATDR_MIRROR"
YOUTUBE_ENV = "ATDR_YOUTUBE_URL"


@dataclass(frozen=True)
class Digest:
    """An expected checksum: `algorithm` (sha256 or md5) and its hex digits (all, or a prefix)."""

    algorithm: str
    hexdigest: str

    def __post_init__(self) -> None:
        if self.algorithm not in ("sha256", "md5"):
            raise ValueError(f"unsupported checksum algorithm {self.algorithm!r}")
        full = 64 if self.algorithm == "sha256" else 32
        digits = self.hexdigest.lower()
        if not (8 <= len(digits) <= full) or any(c not in "0123456789abcdef" for c in digits):
            raise ValueError(f"{self.algorithm} must be 8 to {full} hex digits, got {self.hexdigest!r}")
        object.__setattr__(self, "hexdigest", digits)

    @property
    def is_prefix(self) -> bool:
        return len(self.hexdigest) < (64 if self.algorithm == "sha256" else 32)

    def matches(self, hexdigest: str) -> bool:
        return hexdigest.lower().startswith(self.hexdigest)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}" + (" (prefix)" if self.is_prefix else "")


def resolve(url: str) -> str:
    """`url` as fetched: through `$ATDR_MIRROR` when it is set; local paths are left alone."""
    mirror = os.environ.get(MIRROR_ENV)
    parts = urlsplit(url)
    if not mirror or parts.scheme not in ("http", "https"):
        return url
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def youtube_template() -> str:
    return os.environ.get(YOUTUBE_ENV) or "https://www.youtube.com/watch?v={ytid}"


# AudioSet (Gemmeke et al. 2017): the official segment lists and class list.
AUDIOSET_CSV = "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/{name}"

# ESC-50 (Piczak 2015): the repository archive that egs/esc50/prep_esc50.py downloads. Its md5 is
# the one soundata, hear-preprocess and PaddleAudio pin for this file; no sha256 is published.
ESC50_URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
ESC50_DIGEST = Digest("md5", "7771e4b9d86d0945acce719c7a59305a")

# Speech Commands v0.02 (Warden 2018), as egs/speechcommands/prep_sc.py; sha256 as torchaudio pins it.
SPEECHCOMMANDS_URL = "https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
SPEECHCOMMANDS_DIGEST = Digest("sha256", "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58")


@dataclass(frozen=True)
class Weights:
    """A published checkpoint: saved as `{name}.pth` in the checkpoint folder."""

    name: str
    url: str
    digest: Digest | None  # None: nothing published (the first download's sha256 is recorded)
    description: str


_DEIT = "https://dl.fbaipublicfiles.com/deit/{arch}-{sha}.pth"
_AST = "https://www.dropbox.com/s/{key}/{file}?dl=1"

# ImageNet DeiT (Touvron et al. 2021) as timm 0.4.5 fetched them for the original AST, and the
# AudioSet AST checkpoints of egs/audioset/download_models.sh (Gong et al. 2021), which publishes
# no checksum for them.
WEIGHTS = {w.name: w for w in [
    *(Weights(arch, _DEIT.format(arch=arch, sha=sha), Digest("sha256", sha), f"ImageNet DeiT ({arch})")
      for arch, sha in [("deit_tiny_distilled_patch16_224", "b40b3cf7"),
                        ("deit_small_distilled_patch16_224", "649709d9"),
                        ("deit_base_distilled_patch16_224", "df68dfff"),
                        ("deit_base_distilled_patch16_384", "d0272ac0")]),
    *(Weights(f"audioset_{name}", _AST.format(key=key, file=file), None, f"AudioSet AST, {desc}")
      for name, key, file, desc in [
          ("10_10_0.4593", "ca0b1v2nlxzyeb4", "audioset_10_10_0.4593.pth", "the best single model (0.4593 mAP)"),
          ("10_10_0.4495", "1tv0hovue1bxupk", "audioset_10_10_0.4495.pth", "ensemble member"),
          ("10_10_0.4483", "6u5sikl4b9wo4u5", "audioset_10_10_0.4483.pth", "ensemble member"),
          ("10_10_0.4475", "kt6i0v9fvfm1mbq", "audioset_10_10_0.4475.pth", "ensemble member"),
          ("12_12_0.4467", "snfhx3tizr4nuc8", "audioset_12_12_0.4467.pth", "ensemble member"),
          ("14_14_0.4431", "z18s6pemtnxm4k7", "audioset_14_14_0.4431.pth", "ensemble member"),
          ("16_16_0.4422", "mdsa4t1xmcimia6", "audioset_16_16_0.4422.pth", "ensemble member")]),
]}
