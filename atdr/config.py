"""The run configuration: one model, one dataset, one seed, fully described.

A YAML/JSON file validated by these pydantic models: unknown keys and wrong types are rejected
before any work starts, naming the key. Defaults are the original code's (`src/run.py` arguments,
`src/traintest.py` constants); `config/paper.yaml` sets each paper recipe. The resolved config is
saved as `config.yaml` next to the run's outputs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from atdr.errors import AtdrError


# Numbers in exponent notation that PyYAML (YAML 1.1) reads as strings: `1e3`, `1e-3`, `1.0e3`.
EXPONENT_NUMBER = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class ConfigLoader(yaml.SafeLoader):
    """YAML as a user means it: `EXPONENT_NUMBER`s are numbers, as YAML 1.2 reads them."""


ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", EXPONENT_NUMBER, list("-+0123456789"))


def load_yaml(text: str) -> Any:
    """A YAML (or JSON) document read with `ConfigLoader`."""
    return yaml.load(text, Loader=ConfigLoader)


BOOLEAN_FOR_NUMBER = "expected a number, not a boolean (YAML reads yes, no, on and off as booleans)"


def _leaf_types(annotation: Any) -> set:
    """The types a field's annotation is made of: `tuple[float, float] | None` -> {float, NoneType}."""
    args = get_args(annotation)
    return set().union(*map(_leaf_types, args)) if args else {annotation}


def _has_bool(value: Any) -> bool:
    return isinstance(value, bool) or isinstance(value, (list, tuple)) and any(map(_has_bool, value))


class _Section(BaseModel):
    """Numbers are numbers: finite, never true/false (pydantic would read true as 1 or 1.0)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        types = _leaf_types(cls.model_fields[info.field_name].annotation)
        if _has_bool(value) and bool not in types and types & {int, float}:
            raise ValueError(BOOLEAN_FOR_NUMBER)
        return value


class DataConfig(_Section):
    """Datafiles, class list, features and normalisation."""

    train: Path = Field(description="training datafile (json)")
    valid: Path | None = Field(
        None, description="validation datafile: the best epoch is chosen on it, eval is only reported (None: chosen on eval)")
    eval: Path = Field(description="evaluation datafile: the reported numbers (also used for selection without valid)")
    labels: Path = Field(description="class_labels_indices.csv")
    weights: Path | None = Field(None, description="per-clip weight file: balanced sampling when set (`bal=bal`)")
    frontend: str = Field("kaldi128", description="kaldi<N> or mel<N> (paper: kaldi128, mel64)")
    target_length: int = Field(1024, gt=0, description="frames per clip after padding/cropping")
    norm_stats: Path | None = Field(None, description="json from `atdr norm-stats` (or give mean and std)")
    mean: float | None = Field(None, description="normalisation mean, instead of norm_stats")
    std: float | None = Field(None, gt=0, description="normalisation std, instead of norm_stats")
    loader: Literal["packed", "reference"] = Field(
        "packed", description="packed: waveforms from packed stores (`atdr pack`, <datafile stem>.pack, packed on first "
                              "use), features and augmentation per batch on the device; reference: per clip in the data "
                              "workers, as the original loader")
    train_store: Path | None = Field(
        None, description="packed store holding the training clips when not <train stem>.pack: a larger datafile's "
                          "(clips found there by audio file; the analyses' subsets and relabelled training sets)")
    task: Literal["multilabel", "singlelabel"] = Field(
        "multilabel", description="multilabel (AudioSet: mAP) or singlelabel (ESC-50, Speech Commands: accuracy)")

    @property
    def datafiles(self) -> dict[str, Path]:
        """The datafiles by set: train, valid (when given), eval."""
        return {name: path for name, path in (("train", self.train), ("valid", self.valid), ("eval", self.eval)) if path}

    @model_validator(mode="after")
    def _one_normalisation(self) -> DataConfig:
        explicit = self.mean is not None or self.std is not None
        if explicit and (self.mean is None or self.std is None):
            raise ValueError("give both mean and std")
        if explicit == (self.norm_stats is not None):
            raise ValueError("give either norm_stats or mean and std")
        return self


class AugmentConfig(_Section):
    """Training augmentation (off for evaluation)."""

    mixup: float = Field(0.0, ge=0, le=1, description="probability of mixing a clip with a random partner")
    mixup_alpha: float = Field(10.0, gt=0, description="mixing weight ~ Beta(alpha, alpha)")
    mixup_partner: Literal["dataset", "batch"] = Field(
        "dataset", description="where the packed path draws a mixup partner from: dataset: uniformly from the whole "
                               "training set, read by the data worker, as the original; batch: another clip of the batch "
                               "(a permutation; the reference loader always draws from the dataset)")
    freqm: int = Field(0, ge=0, description="SpecAugment frequency mask bound (0 = off)")
    timem: int = Field(0, ge=0, description="SpecAugment time mask bound (0 = off)")
    noise: bool = Field(False, description="noise + random roll (Speech Commands)")


class ModelConfig(_Section):
    """A registered model (`atdr models`) and its hyper-parameter overrides."""

    name: str = Field(description="registered model name, e.g. ast, tal, taltrans, psla, resnet")
    params: dict[str, Any] = Field(default_factory=dict, description="hyper-parameters overriding the model's defaults")


class OptimConfig(_Section):
    """Adam with warm-up and a multi-step schedule, as the original."""

    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    betas: tuple[float, float] = Field((0.95, 0.999), description="Adam betas")
    weight_decay: float = Field(5e-7, ge=0, description="Adam weight decay")
    warmup_steps: int = Field(1000, ge=0, description="linear warm-up length in steps (0 = none)")
    warmup_every: int = Field(50, gt=0, description="warm-up updates the lr every this many steps, as the original")
    milestones: list[int] = Field([10, 15, 20, 25], description="epochs after which the lr is multiplied by gamma")
    gamma: float = Field(0.5, gt=0, description="lr decay factor at each milestone")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this (None = off)")
    fused: bool = Field(False, description="torch's fused Adam kernel (faster on GPU; same update up to rounding)")


class TrainConfig(_Section):
    """The loop: length, batches, loss, precision, evaluation extras."""

    epochs: int = Field(10, gt=0, description="training epochs")
    batch_size: int = Field(12, gt=0, description="clips per step (over all GPUs)")
    eval_batch_size: int | None = Field(None, gt=0, description="clips per evaluation forward pass (None: 2 x batch_size)")
    seed: int = Field(0, description="seeds initialisation, sampling and augmentation")
    loss: Literal["auto", "bce", "ce"] = Field(
        "auto", description="auto: BCE (with logits for logit models) for multilabel, cross-entropy for singlelabel")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto", description="forward pass in fp32 or under fp16/bf16 autocast; auto: as the original (fp16 for AST, "
                            "fp32 otherwise); fp16 needs CUDA. Evaluation is always fp32")
    wa_start: int | None = Field(None, ge=1, description="first epoch of weight averaging (None = off)")
    wa_end: int | None = Field(None, ge=1, description="last epoch of weight averaging (None = last epoch)")
    num_workers: int = Field(2, ge=0, description="data loading processes")
    threads: int | None = Field(
        None, gt=0, description="torch threads of the training process (None: the CPUs of its job, from SLURM or its CPU "
                                "affinity, less one per data worker; at least 1)")
    compile: bool = Field(False, description="torch.compile the training forward pass (speed; not bit-identical on resume)")
    channels_last: bool = Field(False, description="channels-last memory format for the CNNs (speed on GPU)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available")
    log_every: int = Field(100, gt=0, description="log a line every this many steps when not on a terminal")
    skip_unreadable: bool = Field(True, description="skip (and log once) clips that cannot be read")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, values: Any) -> Any:
        if isinstance(values, dict) and "amp" in values:
            raise ValueError("'amp' was replaced by 'precision' (auto, fp32, fp16 or bf16)")
        return values

    @model_validator(mode="after")
    def _wa_window(self) -> TrainConfig:
        if self.wa_end is not None and (self.wa_start is None or self.wa_end < self.wa_start):
            raise ValueError("wa_end needs wa_start <= wa_end")
        if self.wa_start is not None and self.wa_start > self.epochs:
            raise ValueError("wa_start is after the last epoch")
        return self


class RunConfig(_Section):
    model: ModelConfig
    data: DataConfig
    augment: AugmentConfig = AugmentConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _model_params(self) -> RunConfig:
        from atdr.models import get_spec

        hparams = get_spec(self.model.name).hparams(self.model.params)  # AtdrError naming a bad key or value
        self.model.params = {key: hparams[key] for key in self.model.params}  # typed: 1e3 for an int is 1000
        return self

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def dump(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# Keys that change how a run executes, not what it computes: they may differ on resume.
RUNTIME_KEYS = {("train", "num_workers"), ("train", "threads"), ("train", "device"), ("train", "log_every"),
                ("train", "eval_batch_size")}


def results_relevant(config: dict) -> dict:
    """The config without RUNTIME_KEYS, to decide whether a saved state belongs to this run."""
    return {section: {k: v for k, v in values.items() if (section, k) not in RUNTIME_KEYS} if isinstance(values, dict) else values
            for section, values in config.items()}


def _set(doc: dict, dotted: str, value: str) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
        if not isinstance(doc, dict):
            raise AtdrError(f"--set {dotted}: {key} is not a section")
    doc[leaf] = load_yaml(value)


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        message = f"unknown key '{where}'"
    elif first["type"] == "missing":
        message = f"missing key '{where}'"
    else:
        message = f"{where}: {first['msg'].removeprefix('Value error, ')}"
        if "input" in first and not isinstance(first["input"], dict):
            message += f" (got {first['input']!r})"
    more = len(error.errors()) - 1
    return f"{source}: {message}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def parse_config(doc: Any, source: str = "config", overrides: list[str] = ()) -> RunConfig:
    """Validate a config document; `overrides` are `section.key=value` strings (YAML values)."""
    if not isinstance(doc, dict):
        raise AtdrError(f"{source}: expected a mapping with sections model, data, augment, optim, train")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise AtdrError(f"--set {item!r}: expected section.key=value")
        _set(doc, key.strip(), value)
    try:
        return RunConfig.model_validate(doc)
    except ValidationError as e:
        raise AtdrError(_describe(e, source)) from None


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    path = Path(path)
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise AtdrError(f"cannot read config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise AtdrError(f"{path}: not valid YAML/JSON: {str(e).splitlines()[0]}") from None
    return parse_config(doc, str(path), overrides)
