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


def _processes_per_node(config: dict) -> int:
    """Training processes per node: one per GPU of the node (at least one)."""
    gpus, per_node = config["gpus_per_run"], config.get("gpus_per_node")
    return max(min(gpus, per_node) if per_node else gpus, 1)


def train_gpus(config: dict) -> dict[str, int | str]:
    """The GPU resources of a training job: `gpu` GPUs on one node (`sbatch --gpus`; also what
    `--resources gpu=N` counts on one machine), or, where `gpus_per_run` exceeds `gpus_per_node`,
    `nodes` nodes with `gres=gpu:<gpus_per_node>` each (`sbatch --nodes --gres`)."""
    gpus, per_node = config["gpus_per_run"], config.get("gpus_per_node")
    if not per_node or gpus <= per_node:
        return {"gpu": gpus}
    return {"gpu": 0, "nodes": gpus // per_node, "gres": f"gpu:{per_node}"}


def loader_workers(config: dict, threads: int) -> int:
    """Data-loader workers per training process: the job's CPUs per node shared by its processes,
    one CPU each left for the process itself."""
    return max(threads // _processes_per_node(config) - 1, 0)


def write_run_config(path: str, doc: dict) -> None:
    """Validate a run config document and write it as YAML (the train rule's input)."""
    parse_config(copy.deepcopy(doc), str(path))
    write_text(path, yaml.safe_dump(doc, sort_keys=False))


def check(config: dict) -> None:
    """Build and validate every run config once, so a bad value stops the workflow at start-up."""
    for name in config["models"]:
        if name in RESERVED:
            raise AtdrError(f"models.{name}: '{name}' is reserved for the results layout; rename the model")
    for dataset in config["datasets"]:
        for model in config["models"]:
            parse_config(run_config(config, dataset, model, 0), f"config (datasets.{dataset} x models.{model})")
    gpus, per_node = config.get("gpus_per_run", 1), config.get("gpus_per_node")
    if per_node and gpus > per_node and gpus % per_node:
        raise AtdrError(f"gpus_per_run ({gpus}) must be a multiple of gpus_per_node ({per_node}) to span nodes")
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
        "required": ["source", "train_segments", "eval_segments", "target_length"],
        "properties": {
            "source": {"enum": ["synth", "folder"], "description": "synth: the embedded dataset; folder: an AudioSet-layout folder"},
            "path": {"type": "string", "description": "source folder: class_labels_indices.csv, segment lists, audio/"},
            "synth": {"type": "object", "additionalProperties": False, "properties": {
                "train": {"type": "integer", "minimum": 1, "default": 500},
                "eval": {"type": "integer", "minimum": 1, "default": 200},
                "seconds": {"type": "number", "minimum": 0.25, "default": 2.0},
                "classes": {"type": "integer", "minimum": 2, "maximum": 10, "default": 10},
                "seed": {"type": "integer", "default": 0}}},
            "train_segments": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "eval_segments": {"type": "array", "items": {"type": "string"}, "minItems": 1},
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
            "datasets": {"type": "object", "minProperties": 1, "propertyNames": name, "additionalProperties": dataset},
            "models": {"type": "object", "minProperties": 1, "propertyNames": name, "additionalProperties": model},
            "seeds": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "default": [0]},
            "run_defaults": run,
            "ensembles": {"type": "object", "propertyNames": name, "default": {},
                          "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 2}},
            "bootstrap": {"type": "integer", "minimum": 0, "default": 1000, "description": "resamples for the mAP CIs"},
            "gpus_per_run": {"type": "integer", "minimum": 0, "default": 1,
                             "description": "GPUs per training job (> 1: DDP)"},
            "gpus_per_node": {"type": "integer", "minimum": 1,
                              "description": "SLURM: GPUs of one node; a larger gpus_per_run spans several nodes"},
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
