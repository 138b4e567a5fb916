"""What the Snakemake workflow needs from atdr: the run config of every (dataset, model, seed),
the checks made at start-up, and the config schema.

The workflow config (config/config.yaml, config/README.md) names datasets, models, seeds and
ensembles. `prepare` first expands each cross-validation dataset (`folds`) into one dataset per
fold, `<name>_fold<k>`, evaluated on fold k and trained on the others (the comparison report
aggregates them back), and fills in where each downloaded corpus lives. A run's config is built
by deep-merging, later entries winning:
`run_defaults` -> `models.<model>` -> `datasets.<dataset>.run_overrides` ->
`datasets.<dataset>.model_overrides.<model>`, then the data paths of the dataset, the front-end's
input length and the seed. The schema's run sections are generated from the pydantic models of
`atdr.config`, so the two cannot drift apart (`make schema` rewrites the file).

The analyses (`analyses`, each optional) live under `results/<dataset>/analysis/`. Those that
retrain (`data_efficiency`, `label_noise`) train ordinary runs on other training datafiles:
`results/<dataset>/analysis/<analysis>/<variant>/<model>/seed<seed>`, with the run config of
the same model and seed but `data.train` (and its weights) replaced, its clips read from the
whole training split's packed store (`data.train_store`); the variant is the fraction or the
noise rate, and the whole set and the clean labels are the ordinary runs.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from atdr.atomic import write_text
from atdr.config import (BOOLEAN_FOR_NUMBER, EXPONENT_NUMBER, AugmentConfig, ModelConfig, OptimConfig, TrainConfig,
                         parse_config)
from atdr.errors import AtdrError

RESULTS = "results"
RESERVED = ("data", "download", "ensembles", "comparison", "logs", "benchmarks")
RESERVED_DATASETS = ("comparison", "logs", "benchmarks", "downloads")
NETWORK_SOURCES = ("youtube", "archives", "esc50", "speechcommands")
FOLD = re.compile(r"^(?P<base>.+)_fold(?P<fold>\d+)$")  # a dataset that is one fold of a cross-validation
SPLITS = ("train", "valid", "eval")
DEFAULT_STORE = {"youtube": "audioset", "esc50": "esc50", "speechcommands": "speechcommands"}  # resources/data/<name>


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
    """The datafiles a dataset has: train, valid (where it has a validation split) and eval."""
    ds = config["datasets"][dataset]
    if "split" in ds:
        return ["train", "valid", "eval"] if ds["split"]["valid"] > 0 else ["train", "eval"]
    return [split for split in SPLITS if f"{split}_segments" in ds]


def segment_lists(ds: dict) -> list[str]:
    """Every segment list a dataset reads, each once: those to split, or those of its splits."""
    names = ds.get("segments") or [name for split in SPLITS for name in ds.get(f"{split}_segments", [])]
    return list(dict.fromkeys(names))


def source_files(config: dict, dataset: str, names: list[str]) -> list[str]:
    """Files of a dataset's source, as rule inputs (an edit re-runs what it reaches, judged by
    content): in its folder, those that exist (a plan without the data still works; `atdr link`
    names any that are absent), or those `atdr synth` writes; none for a download."""
    ds = config["datasets"][dataset]
    if ds["source"] == "synth":
        return [f"{RESULTS}/{dataset}/download/{name}" for name in names]
    if ds["source"] in NETWORK_SOURCES:
        return []  # official lists, fixed by the download
    return [path for path in (str(Path(ds["path"]) / name) for name in names) if Path(path).exists()]


def recordings_stamp(config: dict, dataset: str) -> str | None:
    """For a folder of recordings: a digest of every file under its audio/ (path, size,
    modification time), a parameter of the split and datafile rules. Replacing a recording under
    the same name changes no input Snakemake watches (a folder counts by its own time), but does
    change this: the datafiles are made again and what reads them follows (stores, norm stats, runs).
    One `stat` per file at each plan. None for other sources (clips synthesised or downloaded do
    not change under their names), or while the folder is not there."""
    ds = config["datasets"][dataset]
    if ds["source"] != "folder" or not (Path(ds["path"]) / "audio").is_dir():
        return None
    return _folder_stamp(str(Path(ds["path"]) / "audio"))


@functools.lru_cache(maxsize=None)
def _folder_stamp(folder: str) -> str:
    """Each plan's digest of a folder's files, computed once (every job reading the folder asks)."""
    from atdr.data.audio import file_stamp

    stamps = []
    for dirpath, _, files in os.walk(folder, followlinks=True):
        for name in files:
            if not name.startswith("."):  # as `atdr prep` (Snakemake's own marker files among them)
                path = os.path.join(dirpath, name)
                stamps.append((path[len(folder):], file_stamp(path)))
    return hashlib.sha256(json.dumps(sorted(stamps)).encode()).hexdigest()


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


def prepare(datasets: dict) -> dict:
    """The datasets the workflow runs: cross-validations expanded into one dataset per fold, and
    every downloaded corpus with its `path` (default `resources/data/<corpus>`)."""
    prepared = {}
    for name, ds in datasets.items():
        ds = copy.deepcopy(ds)
        if ds["source"] in NETWORK_SOURCES and "path" not in ds:
            ds["path"] = f"resources/data/{name if ds['source'] == 'archives' else DEFAULT_STORE[ds['source']]}"
        if "folds" not in ds:
            if FOLD.match(name):
                raise AtdrError(f"datasets.{name}: names ending in _fold<k> are the folds of a cross-validation "
                                "(datasets.<name>.folds); rename the dataset")
            prepared[name] = ds
            continue
        folds = ds.pop("folds")
        given = [f"{split}_segments" for split in ("train", "eval") if f"{split}_segments" in ds]
        if given:
            raise AtdrError(f"datasets.{name}: folds makes the train and eval lists of each fold; remove {given[0]}")
        if len(set(folds)) != len(folds):
            raise AtdrError(f"datasets.{name}.folds: a segment list is given twice")
        for k, held_out in enumerate(folds, 1):
            prepared[f"{name}_fold{k}"] = {**copy.deepcopy(ds), "eval_segments": [held_out],
                                           "train_segments": [f for f in folds if f != held_out]}
    return prepared


def store_key(path: str) -> str:
    """A download folder as a plain name (for the workflow's flags and logs)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path.strip("/")) or "root"


def stores(config: dict) -> dict[str, dict]:
    """Download folders by key: `path`, `source`, the segment lists any dataset reads from it,
    and the first such dataset's settings (`dataset`)."""
    found: dict[str, dict] = {}
    for name, ds in config["datasets"].items():
        if ds["source"] not in NETWORK_SOURCES:
            continue
        store = found.setdefault(store_key(ds["path"]), {"path": ds["path"], "source": ds["source"], "lists": [],
                                                         "dataset": ds})
        if store["source"] != ds["source"] or store["path"] != ds["path"]:
            raise AtdrError(f"datasets.{name}: path {ds['path']} is also the download folder of a "
                            f"{store['source']} dataset; give each source its own folder")
        store["lists"] = list(dict.fromkeys(store["lists"] + segment_lists(ds)))
    return found


def download_flags(config: dict, dataset: str) -> list[str]:
    """The success flags (results/downloads/<folder key>/) of the downloads a dataset reads: its
    segment lists for `youtube`, the whole corpus otherwise."""
    ds = config["datasets"][dataset]
    flags = f"{RESULTS}/downloads/{store_key(ds['path'])}"
    if ds["source"] == "youtube":
        return [f"{flags}/{name}.ready" for name in segment_lists(ds)]
    return [f"{flags}/{ds['source']}.ready"]


def download_args(store: dict) -> str:
    """`atdr download` options from the settings of the first dataset using a download folder."""
    from atdr.download.addresses import AUDIOSET_CSV

    ds, quote = store["dataset"], shlex.quote
    if store["source"] == "youtube":
        settings = ds.get("youtube", {})
        template = f" --url-template {quote(settings['url_template'])}" if "url_template" in settings else ""
        return f"--min-fraction {settings.get('min_fraction', 0.5)}{template}"
    if store["source"] == "archives":
        files = ds.get("files") or {name: AUDIOSET_CSV.format(name=name)
                                    for name in ["class_labels_indices.csv", *store["lists"]]}
        args = [f"--archive {quote(a['url'])} {a['sha256']}" for a in ds["archives"]]
        args += [f"--file {quote(f'{name}={source}')}" for name, source in files.items()]
        args += [f"--{key.replace('_', '-')} {quote(value)}" for key, value in ds.get("parquet", {}).items()]
        return " ".join(args)
    archive = ds.get("archive")  # esc50, speechcommands: another copy of the official archive
    if not archive:
        return ""
    digest = f"--sha256 {archive['sha256']}" if "sha256" in archive else f"--md5 {archive['md5']}"
    return f"--url {quote(archive['url'])} {digest}"


def pretrained_weights(config: dict, dataset: str, model: str) -> list[str]:
    """Published weights this run starts from (`atdr download weights` names)."""
    from atdr.download.weights import required

    spec = _settings(config, dataset, model)["model"]
    return required(spec["name"], spec.get("params", {}))


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
        "loader": ds["loader"],
    }
    if "mean" in given:
        data.update(mean=given["mean"], std=given["std"])
    else:
        data["norm_stats"] = f"{root}/stats_{frontend}.json"
    doc["data"] = data
    doc.setdefault("train", {})["seed"] = int(seed)
    return canonical(doc)


RETRAINING = {"data_efficiency": "fractions", "label_noise": "rates"}  # analyses that train runs: their variants


def analysis_models(config: dict, analysis: str) -> list[str]:
    """The models an analysis covers: its `models`, default all; none where it is off."""
    if analysis not in config.get("analyses", {}):
        return []
    return config["analyses"][analysis].get("models") or list(config["models"])


def variants(config: dict, analysis: str) -> list[str]:
    """The training-set variants of a retraining analysis (folder names), none where it is off."""
    from atdr.analysis import variant_name

    settings = config.get("analyses", {}).get(analysis)
    return [variant_name(v) for v in settings[RETRAINING[analysis]]] if settings else []


def analysis_dir(dataset: str, analysis: str) -> str:
    return f"{RESULTS}/{dataset}/analysis/{analysis}"


def variant_run_dir(dataset: str, analysis: str, variant: str, model: str, seed: int | str) -> str:
    return f"{analysis_dir(dataset, analysis)}/{variant}/{model}/seed{seed}"


def variant_run_config(config: dict, dataset: str, model: str, seed: int, analysis: str, variant: str) -> dict:
    """The run config of (dataset, model, seed), trained on the variant's training datafile."""
    doc = run_config(config, dataset, model, seed)
    folder = f"{analysis_dir(dataset, analysis)}/{variant}"
    if doc["data"]["loader"] == "packed":  # the variant's clips are read from the whole split's store
        doc["data"]["train_store"] = f"{data_dir(dataset)}/train.pack"
    doc["data"]["train"] = f"{folder}/train.json"
    if doc["data"]["weights"]:
        doc["data"]["weights"] = f"{folder}/train_weight.csv"
    return doc


def analysis_runs(config: dict, dataset: str, analysis: str) -> list[str]:
    """The run folders an analysis compares on a dataset: its models' ordinary runs, and for a
    retraining analysis their runs on each variant. `label_quality`: the runs whose training
    labels' quality is known (the noisy-label runs; with a quality file, every ordinary run)."""
    seeds = config["seeds"]
    if analysis == "label_quality":
        noisy = [variant_run_dir(dataset, "label_noise", v, m, s) for v in variants(config, "label_noise")
                 for m in analysis_models(config, "label_noise") for s in seeds]
        given = [run_dir(dataset, m, s) for m in config["models"] for s in seeds]
        return noisy + (given if "label_quality" in config.get("analyses", {}) else [])
    models = analysis_models(config, analysis)
    runs = [run_dir(dataset, m, s) for m in models for s in seeds]
    if analysis in RETRAINING:
        runs += [variant_run_dir(dataset, analysis, v, m, s) for v in variants(config, analysis) for m in models
                 for s in seeds]
    return runs


def run_outputs(runs: list[str]) -> list[str]:
    """The files of finished runs an analysis reads."""
    return [f"{run}/{name}" for run in runs for name in ("summary.json", "predictions.npy", "targets.npy")]


ANALYSIS_FIGURES = {
    "data_efficiency": ["data_efficiency/data_efficiency.png"],
    "label_noise": ["label_noise/mAP_vs_label_noise.png", "label_quality/per_class_ap_vs_label_quality.png"],
    "label_quality": ["label_quality/per_class_ap_vs_label_quality.png"],
    "robustness": ["robustness/robustness.png"],
    "cost": ["cost/mAP_vs_cost.png"],
}


def analysis_targets(config: dict) -> list[str]:
    """The figure of every analysis that is on, per dataset (their rules write the tables too)."""
    files = [f"{RESULTS}/{dataset}/analysis/{figure}" for analysis in config.get("analyses", {})
             for figure in ANALYSIS_FIGURES[analysis] for dataset in config["datasets"]]
    return list(dict.fromkeys(files))


def probe_args(config: dict) -> str:
    """`atdr probe` options from `analyses.robustness.perturbations` (none where it is off)."""
    args = []
    for kind, strengths in config["analyses"].get("robustness", {}).get("perturbations", {}).items():
        values = [f"{s[0]:g}-{s[1]:g}" if isinstance(s, list) else f"{s:g}" for s in strengths]
        args.append(f"--{kind.replace('_', '-')} " + " ".join(shlex.quote(v) for v in values))
    return " ".join(args)


def _check_analyses(config: dict) -> None:
    analyses = config.get("analyses", {})
    for name, settings in analyses.items():
        unknown = [m for m in settings.get("models", []) if m not in config["models"]]
        if unknown:
            raise AtdrError(f"analyses.{name}.models: unknown model {unknown[0]!r}")
        values = settings.get(RETRAINING.get(name, ""), [])
        if len(set(values)) != len(values):
            raise AtdrError(f"analyses.{name}.{RETRAINING[name]}: a value is given twice")
    for low, high in analyses.get("robustness", {}).get("perturbations", {}).get("bandpass", []):
        if not 0 <= low < high:
            raise AtdrError(f"analyses.robustness.perturbations.bandpass: [{low}, {high}] is not a band (0 <= low < high)")


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


def torch_threads(config: dict, threads: int) -> int:
    """Torch threads per training process (`train.threads`): its share of the job's CPUs that its
    data-loader workers leave (at least 1)."""
    return max(threads // _processes_per_node(config) - loader_workers(config, threads), 1)


def write_run_config(path: str, doc: dict) -> None:
    """Validate a run config document and write it as YAML (the train rule's input)."""
    parse_config(copy.deepcopy(doc), str(path))
    write_text(path, yaml.safe_dump(doc, sort_keys=False))


def read_numbers(config: dict) -> None:
    """Numbers as a user means them, in place, before `check_schema`, as the run config's: the
    configfile's YAML 1.1 reads `1e-3` as a string, YAML 1.2 and `atdr train` as a number (here:
    wherever the schema does not ask for a string); an integral float where the schema asks for
    an integer is that integer (`1e3`, or `--config bootstrap=1e3`: 1000); a boolean is not a
    number; infinity and NaN are refused anywhere."""
    _numbers(config, config_schema(), "")


def _numbers(value: Any, schema: dict, where: str) -> Any:
    kinds = {s.get("type") for s in (schema, *schema.get("anyOf", []))}
    if isinstance(value, bool) and kinds & {"number", "integer"} and "boolean" not in kinds:
        raise AtdrError(f"{where}: {BOOLEAN_FOR_NUMBER} (got {value})")
    if isinstance(value, str) and "string" not in kinds and EXPONENT_NUMBER.match(value):
        value = float(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AtdrError(f"{where}: {value} is not a finite number")
        if "integer" in kinds and "number" not in kinds and value.is_integer():
            value = int(value)
    elif isinstance(value, dict):
        extra = schema.get("additionalProperties")
        for key in value:
            inner = schema.get("properties", {}).get(key, extra if isinstance(extra, dict) else {})
            value[key] = _numbers(value[key], inner, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        first = schema.get("prefixItems", [])
        for i, item in enumerate(value):
            value[i] = _numbers(item, first[i] if i < len(first) else schema.get("items", {}), f"{where}.{i}")
    return value


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
        if name in RESERVED_DATASETS:
            raise AtdrError(f"datasets.{name}: '{name}' is reserved for the results layout; rename the dataset")
        lists = {k for k in ("train_segments", "valid_segments", "eval_segments", "segments", "split") if k in ds}
        if lists not in ({"train_segments", "eval_segments"}, {"train_segments", "valid_segments", "eval_segments"},
                         {"segments", "split"}):
            raise AtdrError(f"datasets.{name}: give train_segments and eval_segments (and optionally valid_segments), "
                            "segments and split (to split one list into train, valid and eval), or folds")
    stores(config)
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
    _check_analyses(config)


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
    lists = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    url = {"type": "string", "description": "URL or local path"}
    dataset = {
        "type": "object", "additionalProperties": False,
        "required": ["source", "target_length"],
        "properties": {
            "source": {"enum": ["synth", "folder", *NETWORK_SOURCES],
                       "description": "synth: the embedded dataset; folder: a folder of recordings (yours or AudioSet's); "
                                      "youtube, archives, esc50, speechcommands: downloaded (atdr download)"},
            "path": {"type": "string",
                     "description": "folder: segment lists, audio/ and optionally class_labels_indices.csv; downloaded "
                                    "sources: where the download goes (default resources/data/<corpus>)"},
            "synth": {"type": "object", "additionalProperties": False, "properties": {
                "train": {"type": "integer", "minimum": 1, "default": 500},
                "eval": {"type": "integer", "minimum": 1, "default": 200},
                "seconds": {"type": "number", "minimum": 0.25, "default": 2.0},
                "classes": {"type": "integer", "minimum": 2, "maximum": 10, "default": 10},
                "seed": {"type": "integer", "default": 0}}},
            "train_segments": {**lists, "description": "segment lists of the training set"},
            "valid_segments": {**lists, "description": "validation split: the best epoch is chosen on it"},
            "eval_segments": {**lists, "description": "segment lists of the evaluation set"},
            "segments": {**lists, "description": "segment lists to split into train, valid and eval (with split)"},
            "split": {"type": "object", "additionalProperties": False,
                      "description": "stable split of segments (a hash of each clip's id and the seed): shares of "
                                     "valid and eval, and the seed",
                      "properties": {
                          "valid": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.1},
                          "eval": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.2},
                          "seed": {"type": "integer", "default": 0}}},
            "folds": {**lists, "minItems": 2, "description": "cross-validation: one dataset <name>_fold<k> per list, "
                                                             "evaluated on list k and trained on the others"},
            "verify": {"type": "boolean", "default": False,
                       "description": "atdr split and prep decode every clip instead of reading its header"},
            "loader": {"enum": ["packed", "reference"], "default": "packed",
                       "description": "packed: each split decoded once into a store (atdr pack), features on the "
                                      "device; reference: per clip in the data workers"},
            "pack_codec": {"enum": ["pcm16", "flac"], "default": "pcm16",
                           "description": "how atdr pack stores clips: pcm16 (fastest) or flac (about half the size)"},
            "archives": {"type": "array", "minItems": 1, "description": "source archives: shards with their sha256",
                         "items": {"type": "object", "additionalProperties": False, "required": ["url", "sha256"],
                                   "properties": {"url": url, "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}}}},
            "files": {"type": "object", "additionalProperties": url,
                      "description": "source archives: metadata files by name (default: AudioSet's official lists)"},
            "parquet": {"type": "object", "additionalProperties": False,
                        "properties": {"id_column": {"type": "string"}, "audio_column": {"type": "string"}}},
            "archive": {"type": "object", "additionalProperties": False, "required": ["url"],
                        "description": "esc50, speechcommands: fetch this copy instead of the official archive",
                        "properties": {"url": url, "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                                       "md5": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"}},
                        "oneOf": [{"required": ["sha256"]}, {"required": ["md5"]}]},
            "youtube": {"type": "object", "additionalProperties": False, "properties": {
                "url_template": {"type": "string", "pattern": "\\{ytid\\}", "description": "where a clip is looked up"},
                "min_fraction": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5,
                                 "description": "fail a list when less than this share of it downloads"}}},
            "target_length": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1},
                              "description": "frames per clip for each front-end used on this dataset"},
            "task": {"enum": ["multilabel", "singlelabel"], "default": "multilabel"},
            "balanced_sampling": {"type": "boolean", "default": True},
            "run_overrides": run,
            "model_overrides": {"type": "object", "additionalProperties": run},
        },
        "allOf": [{"if": {"properties": {"source": {"const": "folder"}}}, "then": {"required": ["path"]}},
                  {"if": {"properties": {"source": {"const": "archives"}}}, "then": {"required": ["archives"]}}],
    }
    name = {"pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"}
    models = {"type": "array", "items": {"type": "string"}, "minItems": 1,
              "description": "the models it covers (default: every model)"}
    seed = {"type": "integer", "minimum": 0, "default": 0}
    shares = {"type": "array", "minItems": 1, "items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}}
    numbers = {"type": "array", "minItems": 1, "items": {"type": "number"}}
    positive = {"type": "array", "minItems": 1, "items": {"type": "number", "exclusiveMinimum": 0}}
    analyses = {
        "type": "object", "additionalProperties": False, "default": {},
        "description": "the paper's analyses, each optional: results/<dataset>/analysis/",
        "properties": {
            "data_efficiency": {
                "type": "object", "additionalProperties": False, "required": ["fractions"],
                "description": "retrain on nested, stratified subsets of the training set",
                "properties": {"models": models, "seed": seed,
                               "fractions": {**shares, "description": "shares of the training clips (1: the ordinary run)"}}},
            "label_noise": {
                "type": "object", "additionalProperties": False, "required": ["rates"],
                "description": "retrain on training labels with noise injected",
                "properties": {"models": models, "seed": seed,
                               "rates": {**shares, "description": "share of the labels dropped, and of wrong ones added"}}},
            "label_quality": {
                "type": "object", "additionalProperties": False, "required": ["file"],
                "properties": {"file": {"type": "string", "description": "per-class label quality of the labels as given "
                                                                        "(e.g. AudioSet's qa_true_counts.csv)"}}},
            "robustness": {
                "type": "object", "additionalProperties": False, "required": ["perturbations"],
                "description": "probe trained runs under waveform perturbations (atdr probe)",
                "properties": {
                    "models": models, "seed": seed,
                    "perturbations": {
                        "type": "object", "additionalProperties": False, "minProperties": 1,
                        "properties": {
                            "white_noise": {**numbers, "description": "SNRs (dB)"},
                            "babble": {**numbers, "description": "SNRs (dB) of other eval clips mixed in"},
                            "gain": {**numbers, "description": "gains (dB)"},
                            "lowpass": {**positive, "description": "cut-off frequencies (Hz)"},
                            "bandpass": {"type": "array", "minItems": 1, "description": "bands [low, high] (Hz)",
                                         "items": {"type": "array", "items": {"type": "number", "minimum": 0},
                                                   "minItems": 2, "maxItems": 2}},
                            "shift": {**numbers, "description": "circular shifts (s)"},
                            "truncate": {"type": "array", "minItems": 1, "description": "shares of the clip kept",
                                         "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}},
                            "resample": {"type": "array", "minItems": 1, "description": "rates (Hz) of round trips",
                                         "items": {"type": "integer", "minimum": 1}}}}}},
            "cost": {
                "type": "object", "additionalProperties": False,
                "description": "parameters, GFLOPs, training and inference speed, mAP per device-hour",
                "properties": {"inference_clips": {"type": "integer", "minimum": 1, "default": 64,
                                                   "description": "eval clips timed per run for inference speed"}}},
        },
    }
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
                             "description": "GPUs per training job (> 1: DDP)"},
            "gpus_per_node": {"type": "integer", "minimum": 1,
                              "description": "SLURM: GPUs of one node; a larger gpus_per_run spans several nodes"},
            "analyses": analyses,
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
