"""The self-describing model bundle: a model checkpoint that says how to build and feed it.

A bundle (`best.pt`, `wa.pt`, converted checkpoints of the original code) carries what inference
needs besides the weights — model name and hyper-parameters, front-end, input length,
normalisation and the class list — so `atdr tag` cannot feed a model the wrong features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from atdr.data.features import get_frontend
from atdr.data.labels import LabelSet
from atdr.errors import AtdrError
from atdr.models import create, without_pretraining
from atdr.torchfile import load, save  # train.py calls them as checkpoint.load/save too

BUNDLE_FORMAT = "atdr-model-1"


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
