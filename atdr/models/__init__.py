"""The model zoo: every tagger of the paper behind one registry.

    model = create("tal", label_dim=527, n_mels=128, target_length=1024, dropout=0.2)
    loss = BCEWithLogitsLoss() if model.output == "logits" else BCELoss()

`list_models()` names them, `get_spec(name)` gives defaults, front-end and output kind.
"""

from atdr.models import ast, fnet, linear, psla, tal, transformer  # noqa: F401  (fill the registry)
from atdr.models._registry import (
    Complexity,
    ModelSpec,
    complexity,
    create,
    get_spec,
    list_models,
    list_specs,
    parse_overrides,
    register_model,
    without_pretraining,
)
from atdr.models.base import AudioTagger

__all__ = [
    "AudioTagger",
    "Complexity",
    "ModelSpec",
    "complexity",
    "create",
    "get_spec",
    "list_models",
    "list_specs",
    "parse_overrides",
    "register_model",
    "without_pretraining",
]
