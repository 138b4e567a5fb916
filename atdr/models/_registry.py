"""The model registry: `@register_model` fills a name -> `ModelSpec` table, `create` is the one way in.

A spec holds everything about a model that is not in its weights: the class, the default
hyper-parameters (the paper recipe's, but where `paper` holds the recipe's own: ResNet's default
head takes any input size, the recipe's only 64 x 400), the front-end it is trained on, what it
outputs, and its counterpart in the original code (`Original`: the class, its arguments, and how
to map its checkpoints onto ours). The model classes take every hyper-parameter as a required keyword; the
defaults live here only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from atdr.data.features import get_frontend
from atdr.errors import AtdrError
from atdr.models.base import AudioTagger, Output

# A filter maps an original checkpoint's state dict (without DataParallel's `module.` prefix)
# onto the keys and shapes of `model`.
CheckpointFilter = Callable[[dict[str, torch.Tensor], AudioTagger], dict[str, torch.Tensor]]

# Default input length per front-end kind, as the recipes pad/crop a 10 s clip.
_TARGET_LENGTH = {"kaldi": 1024, "mel": 400}

_REGISTRY: dict[str, ModelSpec] = {}


@dataclass(frozen=True)
class Original:
    """A model's class in the original code (lijuncheng16/AudioTaggingDoneRight, or the PSLA/AST
    code it builds on), what `atdr convert-checkpoint` maps that class's checkpoints from.

    `arguments` gives, for one of our model configs (`AudioTagger.config`), the arguments the
    original class is built with (its keywords, its `args` namespace or its config dict);
    `fixed` holds the hyper-parameters the original class always has (a conversion uses them
    and refuses others).
    """

    cls: str  # "file:Class", e.g. "src/models/Net_mModal_mgpu.py:TALNet"
    arguments: Callable[[Mapping[str, Any]], dict[str, Any]]
    checkpoint_filter: CheckpointFilter = field(repr=False)
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def describe(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """What a converted checkpoint records about its origin."""
        return {"class": self.cls, "arguments": self.arguments(config)}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type[AudioTagger]
    defaults: Mapping[str, Any]
    frontend: str  # "kaldi128" or "mel64": what the paper recipe feeds this model
    description: str
    original: Original
    aliases: tuple[str, ...] = ()
    original_precision: str = "fp32"  # what the original code trained it in: `train.precision: auto`
    # Its recipe in config/paper.yaml: the hyper-parameters that differ from the defaults (None: no recipe there).
    paper: Mapping[str, Any] | None = None

    @property
    def output(self) -> Output:
        return self.cls.output

    @property
    def family(self) -> str:
        return self.cls.__module__.rsplit(".", 1)[-1]

    @property
    def n_mels(self) -> int:
        return get_frontend(self.frontend).n_mels

    @property
    def target_length(self) -> int:
        """Frames of a 10 s clip at the default front-end."""
        return _TARGET_LENGTH[get_frontend(self.frontend).kind]

    def check_key(self, key: str) -> None:
        if key not in self.defaults:
            raise AtdrError(
                f"model {self.name!r} has no hyper-parameter {key!r}; valid: {', '.join(sorted(self.defaults))}"
            )

    def hparams(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults updated with `overrides`, after checking each key and value type."""
        hparams = dict(self.defaults)
        for key, value in overrides.items():
            self.check_key(key)
            hparams[key] = _check_type(self.name, key, value, self.defaults[key])
        return hparams


def register_model(
    name: str,
    *,
    defaults: Mapping[str, Any],
    frontend: str,
    description: str,
    original: Original,
    aliases: tuple[str, ...] = (),
    original_precision: str = "fp32",
    paper: Mapping[str, Any] | None = None,
) -> Callable[[type[AudioTagger]], type[AudioTagger]]:
    """Class decorator: register `cls` under `name` (and `aliases`) with its default hyper-parameters
    (and `paper`: those of its recipe in config/paper.yaml that differ from them, if it has one)."""
    if frontend not in ("kaldi128", "mel64"):
        raise ValueError(f"{name}: frontend must be kaldi128 or mel64, got {frontend!r}")
    if original_precision not in ("fp32", "fp16"):
        raise ValueError(f"{name}: original_precision must be fp32 or fp16, got {original_precision!r}")

    def decorate(cls: type[AudioTagger]) -> type[AudioTagger]:
        spec = ModelSpec(name, cls, MappingProxyType(dict(defaults)), frontend, description, original, aliases,
                         original_precision, None if paper is None else MappingProxyType(dict(paper)))
        for key in (name, *aliases):
            if key in _REGISTRY:
                raise ValueError(f"model name {key!r} registered twice")
            _REGISTRY[key] = spec
        return cls

    return decorate


def list_models() -> list[str]:
    """Every name `create` accepts (aliases included), sorted."""
    return sorted(_REGISTRY)


def list_specs() -> list[ModelSpec]:
    """One spec per model (aliases folded in), sorted by name."""
    return sorted({id(s): s for s in _REGISTRY.values()}.values(), key=lambda s: s.name)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AtdrError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def create(name: str, *, label_dim: int, n_mels: int, target_length: int, **overrides: Any) -> AudioTagger:
    """Build model `name` for `[batch, target_length, n_mels]` inputs and `label_dim` classes.

    `overrides` replace the spec's default hyper-parameters; unknown keys and wrongly typed
    values raise AtdrError, and so do values the model rejects.
    """
    spec = get_spec(name)
    hparams = spec.hparams(overrides)
    model = spec.cls(label_dim=label_dim, n_mels=n_mels, target_length=target_length, **hparams)
    model.model_name = spec.name
    model.config = dict(label_dim=label_dim, n_mels=n_mels, target_length=target_length, **hparams)
    return model


def without_pretraining(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` with every `*_pretrain` flag off: for models whose weights come from a checkpoint."""
    return {k: (False if k.endswith("_pretrain") else v) for k, v in config.items()}


def parse_overrides(name: str, items: list[str]) -> dict[str, Any]:
    """`["key=value", ...]` (from `--set`) -> typed overrides for model `name`."""
    spec = get_spec(name)
    overrides = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise AtdrError(f"--set {item!r}: expected key=value")
        key = key.strip()
        spec.check_key(key)
        overrides[key] = _parse_value(name, key, text.strip(), spec.defaults[key])
    return overrides


@dataclass(frozen=True)
class Complexity:
    params: int
    gflops: float  # FlopCounterMode count (2 per multiply-add) for one clip


def complexity(
    name: str, *, label_dim: int = 527, n_mels: int | None = None, target_length: int | None = None, **overrides: Any
) -> Complexity:
    """Parameters and GFLOPs of one forward pass on one clip (default: 10 s at the model's front-end).

    Built on the `meta` device (no memory, no compute) when the model allows it, else on CPU.
    Ops FlopCounterMode does not count (FFT, elementwise) are left out.
    """
    spec = get_spec(name)
    kwargs = dict(
        label_dim=label_dim, n_mels=n_mels or spec.n_mels, target_length=target_length or spec.target_length
    )
    try:
        return _measure(name, "meta", kwargs, overrides)
    except (NotImplementedError, RuntimeError):  # an op without a meta implementation
        return _measure(name, "cpu", kwargs, overrides)


def _measure(name: str, device: str, kwargs: dict[str, int], overrides: Mapping[str, Any]) -> Complexity:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device(device):
        model = create(name, **kwargs, **overrides).eval()
        x = torch.zeros(1, kwargs["target_length"], kwargs["n_mels"])
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return Complexity(sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 1e9)


def _check_type(name: str, key: str, value: Any, default: Any) -> Any:
    """`value` as the type of `default`; numbers as in the run config's other sections: finite, never
    a boolean, and an integral float for an int (1e3 -> 1000)."""
    kind = type(default)
    if kind in (int, float) and type(value) in (int, float):
        if not math.isfinite(value):
            raise AtdrError(f"model {name!r}: {key} must be a finite number, got {value!r}")
        if kind is float or value == int(value):
            return kind(value)
    if type(value) is not kind:
        raise AtdrError(f"model {name!r}: {key} must be {kind.__name__}, got {value!r}")
    return value


def _parse_value(name: str, key: str, text: str, default: Any) -> Any:
    kind = type(default)
    if kind is bool:
        flags = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if text.lower() not in flags:
            raise AtdrError(f"model {name!r}: {key} must be true or false, got {text!r}")
        return flags[text.lower()]
    try:
        return _check_type(name, key, float(text), default) if kind in (int, float) else kind(text)
    except ValueError:
        raise AtdrError(f"model {name!r}: {key} must be {kind.__name__}, got {text!r}") from None
