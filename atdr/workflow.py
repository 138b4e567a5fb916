"""What the Snakemake workflow needs from atdr: the run config of every (dataset, model, seed),
the checks made at start-up, and the config schema.

The workflow config (config/config.yaml, config/README.md) names datasets, models, seeds and
ensembles. A run's config is built by deep-merging, later entries winning:
`run_defaults` -> `models.<model>` -> `datasets.<dataset>.run_overrides` ->
`datasets.<dataset>.model_overrides.<model>`, then the data paths of the dataset, the front-end's
input length and the seed. The schema's run sections are generated from the pydantic models of
`atdr.config`, so the two cannot drift apart (`make schema` rewrites the file).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from atdr.atomic import write_text
from atdr.config import AugmentConfig, ModelConfig, OptimConfig, TrainConfig, parse_config
from atdr.errors import AtdrError

RESULTS = "results"
RESERVED = ("data", "download", "ensembles", "comparison", "logs", "benchmarks")


def deep_merge(base: dict, override: dict) -> dict:
    """`base` updated with `override`, recursing into nested mappings."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def canonical(value: Any) -> Any:
    """`value` with every mapping's keys sorted, so that Snakemake, which compares the params of
    a job with the last run's, sees no change when only the order of keys in the config did."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def data_dir(dataset: str) -> str:
    return f"{RESULTS}/{dataset}/data"


def splits(config: dict, dataset: str) -> list[str]:
    """The datafiles a dataset has: train, valid (with a validation split) and eval."""
    split = config["datasets"][dataset].get("split")
    return ["train", "valid", "eval"] if split and split["valid"] > 0 else ["train", "eval"]


def source_files(config: dict, dataset: str, names: list[str]) -> list[str]:
    """Files of a dataset's source, as rule inputs (an edit re-runs what it reaches, judged by
    content): in its folder, those that exist (a plan without the data still works; `atdr link`
    names any that are absent), or those `atdr synth` writes."""
    ds = config["datasets"][dataset]
    if ds["source"] == "synth":
        return [f"{RESULTS}/{dataset}/download/{name}" for name in names]
    return [path for path in (str(Path(ds["path"]) / name) for name in names) if Path(path).exists()]


def derived_classes(config: dict, dataset: str, names: list[str]) -> list[str] | None:
    """For a folder without class_labels_indices.csv: the label ids its segment lists use, from
    which `atdr link` builds the class list (as a rule parameter: a change re-runs the link and
    what follows). None where the folder has a class list, or its lists cannot be read yet."""
    from atdr.data.segments import read_segments

    if config["datasets"][dataset]["source"] != "folder" or source_files(config, dataset, ["class_labels_indices.csv"]):
        return None
    try:
        return sorted({m for path in source_files(config, dataset, names) for s in read_segments(path) for m in s.labels})
    except AtdrError:
        return None  # `atdr link` reports it


def comparison_dir(config: dict, configfiles: list) -> str:
    """`results/comparison/<name>`: `name` from the config, else its file's name without .yaml, so
    that two configs never overwrite each other's comparison."""
    name = config.get("name") or (Path(configfiles[-1]).stem if configfiles else "default")
    return f"{RESULTS}/comparison/{name}"


def run_dir(dataset: str, model: str, seed: int | str) -> str:
    return f"{RESULTS}/{dataset}/{model}/seed{seed}"


def frontend_of(config: dict, dataset: str, model: str) -> str:
    return _settings(config, dataset, model)["data"]["frontend"]


def uses_norm_stats(config: dict, dataset: str, model: str) -> bool:
    """False where the model config gives the paper's mean and std instead of computed stats."""
    return "mean" not in _settings(config, dataset, model)["data"]


def _settings(config: dict, dataset: str, model: str) -> dict:
    ds = config["datasets"][dataset]
    doc = deep_merge(config.get("run_defaults", {}), config["models"][model])
    doc = deep_merge(doc, ds.get("run_overrides", {}))
    return deep_merge(doc, ds.get("model_overrides", {}).get(model, {}))


def run_config(config: dict, dataset: str, model: str, seed: int) -> dict:
    """The complete run config document for one training job."""
    ds = config["datasets"][dataset]
    doc = _settings(config, dataset, model)
    given = doc.get("data", {})
    frontend = given["frontend"]
    if frontend not in ds["target_length"]:
        raise AtdrError(f"datasets.{dataset}.target_length has no entry for front-end {frontend} (used by models.{model})")
    root = data_dir(dataset)
    data = {
        "train": f"{root}/train.json",
        "valid": f"{root}/valid.json" if "valid" in splits(config, dataset) else None,
        "eval": f"{root}/eval.json",
        "labels": f"{RESULTS}/{dataset}/download/class_labels_indices.csv",
        "weights": f"{root}/train_weight.csv" if ds["balanced_sampling"] else None,
        "frontend": frontend,
        "target_length": ds["target_length"][frontend],
        "task": ds["task"],
    }
    if "mean" in given:
        data.update(mean=given["mean"], std=given["std"])
    else:
        data["norm_stats"] = f"{root}/stats_{frontend}.json"
    doc["data"] = data
    doc.setdefault("train", {})["seed"] = int(seed)
    return canonical(doc)


def write_run_config(path: str, doc: dict) -> None:
    """Validate a run config document and write it as YAML (the train rule's input)."""
    parse_config(copy.deepcopy(doc), str(path))
    write_text(path, yaml.safe_dump(doc, sort_keys=False))


def check_schema(config: dict) -> None:
    """Validate the workflow config against the schema; the first problem as one short line
    (where, and what is allowed), not the schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(config_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        unexpected = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(error.schema.get("properties", {}))
        raise AtdrError(f"{where}: unknown key {unexpected[0]!r} (allowed: {allowed})")
    description = error.schema.get("description")
    raise AtdrError(f"{where}: {error.message}" + (f" ({description})" if description else ""))


def check(config: dict) -> None:
    """Build and validate every run config once, so a bad value stops the workflow at start-up."""
    for name in config["models"]:
        if name in RESERVED:
            raise AtdrError(f"models.{name}: '{name}' is reserved for the results layout; rename the model")
    for name, ds in config["datasets"].items():
        lists = {k for k in ("train_segments", "eval_segments", "segments", "split") if k in ds}
        if lists not in ({"train_segments", "eval_segments"}, {"segments", "split"}):
            raise AtdrError(f"datasets.{name}: give either train_segments and eval_segments, "
                            "or segments and split (to split one list into train, valid and eval)")
    for dataset in config["datasets"]:
        for model in config["models"]:
            parse_config(run_config(config, dataset, model, 0), f"config (datasets.{dataset} x models.{model})")
    for name, members in config.get("ensembles", {}).items():
        unknown = [m for m in members if m not in config["models"]]
        if unknown:
            raise AtdrError(f"ensembles.{name}: unknown model {unknown[0]!r}")


def _partial(model: type) -> dict:
    """JSON schema of a run-config section for overrides: every key optional and without a
    default (Snakemake's validation would otherwise fill them in and override earlier layers)."""
    schema = model.model_json_schema()
    schema.pop("required", None)
    for prop in schema["properties"].values():
        prop.pop("default", None)
    return schema


def config_schema() -> dict:
    """The JSON schema of the workflow config (written to workflow/schemas/config.schema.yaml)."""
    run_sections = {
        "model": _partial(ModelConfig),
        "data": {"type": "object", "additionalProperties": False, "description": "front-end; optionally the paper's normalisation",
                 "properties": {"frontend": {"type": "string", "description": "kaldi<N> or mel<N>"},
                                "mean": {"type": "number"}, "std": {"type": "number", "exclusiveMinimum": 0}},
                 "dependentRequired": {"mean": ["std"], "std": ["mean"]}},
        "augment": _partial(AugmentConfig),
        "optim": _partial(OptimConfig),
        "train": _partial(TrainConfig),
    }
    run = {"type": "object", "additionalProperties": False, "properties": run_sections}
    model = {"type": "object", "additionalProperties": False, "required": ["model", "data"],
             "properties": run_sections, "description": "a run config without paths: model, data.frontend, augment, optim, train"}
    dataset = {
        "type": "object", "additionalProperties": False,
        "required": ["source", "target_length"],
        "properties": {
            "source": {"enum": ["synth", "folder"], "description": "synth: the embedded dataset; folder: a folder of recordings (yours or AudioSet's)"},
            "path": {"type": "string",
                     "description": "source folder: segment lists, audio/ and optionally class_labels_indices.csv"},
            "synth": {"type": "object", "additionalProperties": False, "properties": {
                "train": {"type": "integer", "minimum": 1, "default": 500},
                "eval": {"type": "integer", "minimum": 1, "default": 200},
                "seconds": {"type": "number", "minimum": 0.25, "default": 2.0},
                "classes": {"type": "integer", "minimum": 2, "maximum": 10, "default": 10},
                "seed": {"type": "integer", "default": 0}}},
            "train_segments": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                               "description": "segment lists of the training set"},
            "eval_segments": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                              "description": "segment lists of the evaluation set"},
            "segments": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                         "description": "segment lists to split into train, valid and eval (with split)"},
            "split": {"type": "object", "additionalProperties": False,
                      "description": "stratified split of segments: shares of valid and eval, and the seed",
                      "properties": {
                          "valid": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.1},
                          "eval": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.2},
                          "seed": {"type": "integer", "default": 0}}},
            "verify": {"type": "boolean", "default": False,
                       "description": "atdr prep decodes every clip instead of reading its header"},
            "target_length": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1},
                              "description": "frames per clip for each front-end used on this dataset"},
            "task": {"enum": ["multilabel", "singlelabel"], "default": "multilabel"},
            "balanced_sampling": {"type": "boolean", "default": True},
            "run_overrides": run,
            "model_overrides": {"type": "object", "additionalProperties": run},
        },
        "allOf": [{"if": {"properties": {"source": {"const": "folder"}}}, "then": {"required": ["path"]}}],
    }
    name = {"pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "atdr workflow config",
        "type": "object",
        "additionalProperties": False,
        "required": ["datasets", "models"],
        "properties": {
            "name": {"type": "string", "pattern": name["pattern"],
                     "description": "the comparison goes to results/comparison/<name> (default: the config file's name)"},
            "datasets": {"type": "object", "minProperties": 1, "propertyNames": name, "additionalProperties": dataset},
            "models": {"type": "object", "minProperties": 1, "propertyNames": name, "additionalProperties": model},
            "seeds": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "default": [0]},
            "run_defaults": run,
            "ensembles": {"type": "object", "propertyNames": name, "default": {},
                          "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 2}},
            "bootstrap": {"type": "integer", "minimum": 0, "default": 1000, "description": "resamples for the mAP CIs"},
            "gpus_per_run": {"type": "integer", "minimum": 0, "default": 1,
                             "description": "GPUs per training job (> 1: DDP through torchrun)"},
        },
    }


def schema_yaml() -> str:
    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    header = "# Generated by `make schema` from atdr/workflow.py and atdr/config.py: do not edit.\n"
    return header + yaml.dump(config_schema(), Dumper=Dumper, sort_keys=False, width=120)


if __name__ == "__main__":  # `make schema`
    sys.stdout.write(schema_yaml())
