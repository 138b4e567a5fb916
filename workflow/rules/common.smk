# Config validation and the helpers every stage uses. Run configs are built by atdr.workflow.
import os
from pathlib import Path

import atdr.slurm as atdr_slurm
import atdr.workflow as atdr_workflow
from atdr.errors import AtdrError
from atdr.download.weights import checkpoint_dir
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


# Jobs run `python -m atdr` from this checkout, in the project venv or a conda env (envs/); never
# from the working directory (PYTHONSAFEPATH), which may hold an `atdr/` folder of its own.
shell.prefix(
    f'set -euo pipefail; export PYTHONSAFEPATH=1 PYTHONPATH="{Path(workflow.basedir).parent}"'
    + '"${{PYTHONPATH:+:$PYTHONPATH}}"; '
)

if not config:
    raise WorkflowError("no config: run from the repository root (the default profile loads config/config.yaml) or pass --configfile")
try:
    atdr_workflow.read_numbers(config)  # 1e3 as a number, as YAML 1.2 reads it
    atdr_workflow.check_schema(config)  # a mistake in one line, not the schema
    validate(config, "../schemas/config.schema.yaml")  # fills in the defaults
    config["datasets"] = atdr_workflow.prepare(config["datasets"])  # cross-validation folds, download folders
    if not workflow.remote_exec:  # checked once, by the main process: a cluster job's Snakemake starts faster
        atdr_workflow.check(config)
except AtdrError as e:
    raise WorkflowError(f"config: {e}")

DATASETS = list(config["datasets"])
MODELS = list(config["models"])
SEEDS = [str(s) for s in config["seeds"]]
ENSEMBLES = list(config["ensembles"])
RESULTS = atdr_workflow.RESULTS
COMPARISON = atdr_workflow.comparison_dir(config, workflow.configfiles)
CHECKPOINTS = str(checkpoint_dir())  # published weights ($ATDR_CHECKPOINTS or resources/checkpoints)
STORES = atdr_workflow.stores(config)  # download folders, by key


def choice(names):
    """A wildcard constraint matching exactly these names (nothing when the list is empty)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def of_source(*sources):
    return [d for d, ds in config["datasets"].items() if ds["source"] in sources]


wildcard_constraints:
    dataset=choice(DATASETS),
    model=choice(MODELS),
    seed=r"\d+",
    ensemble=choice(ENSEMBLES),
    frontend=r"(kaldi|mel)\d+",


def download_dir(w):
    return f"{RESULTS}/{w.dataset}/download"


def segment_names(dataset):
    """The segment lists a dataset names (those to split, or those of its splits)."""
    return atdr_workflow.segment_lists(config["datasets"][dataset])


def split_inputs(w):
    return atdr_workflow.source_files(config, w.dataset, config["datasets"][w.dataset]["segments"])


def datafile_segments(w):
    """The segment list(s) of a split: written by the split rule, named in the config, or (for a
    download) the official lists linked in with the clips."""
    ds = config["datasets"][w.dataset]
    if "split" in ds:
        return [f"{atdr_workflow.data_dir(w.dataset)}/{w.split}_segments.csv"]
    if ds["source"] in atdr_workflow.NETWORK_SOURCES:
        return [f"{download_dir(w)}/{name}" for name in ds[f"{w.split}_segments"]]
    return atdr_workflow.source_files(config, w.dataset, ds[f"{w.split}_segments"])


def tracked_segments(w):
    """The segment lists of a split that are inputs, so that an edit re-runs what it reaches; all
    but a download's, which are put in place with its clips."""
    if config["datasets"][w.dataset]["source"] in atdr_workflow.NETWORK_SOURCES:
        return []
    return datafile_segments(w)


def verify_flag(w):
    """`--verify` where the dataset decodes every clip when checking it, not only its header."""
    return "--verify" if config["datasets"][w.dataset]["verify"] else ""


def class_list_source(w):
    """A folder's own class list, as an input (an edit re-runs everything it reaches)."""
    return atdr_workflow.source_files(config, w.dataset, ["class_labels_indices.csv"])


def derived_classes(w):
    return atdr_workflow.derived_classes(config, w.dataset, segment_names(w.dataset))


def run_path(w):
    return atdr_workflow.run_dir(w.dataset, w.model, w.seed)


def train_inputs(w):
    """Datafiles (and their packed stores), class list, weights, norm stats and published weights a run reads."""
    data = atdr_workflow.data_dir(w.dataset)
    splits = atdr_workflow.splits(config, w.dataset)
    packed = config["datasets"][w.dataset]["loader"] == "packed"
    inputs = {
        "config": f"{run_path(w)}/run.yaml",
        **{split: f"{data}/{split}.json" for split in splits},
        "stores": [f"{data}/{split}.pack" for split in splits if packed],
        "labels": f"{download_dir(w)}/class_labels_indices.csv",
        # published weights: a fresh copy of the same file does not retrain
        "pretrained": [ancient(f"{CHECKPOINTS}/{name}.pth") for name in atdr_workflow.pretrained_weights(config, w.dataset, w.model)],
    }
    if config["datasets"][w.dataset]["balanced_sampling"]:
        inputs["weights"] = f"{data}/train_weight.csv"
    if atdr_workflow.uses_norm_stats(config, w.dataset, w.model):
        frontend = atdr_workflow.frontend_of(config, w.dataset, w.model)
        inputs["stats"] = f"{data}/stats_{frontend}.json"
    return inputs


def variant_run_path(w):
    """A run of a retraining analysis (analysis.smk): a model trained on a variant of the training set."""
    return atdr_workflow.variant_run_dir(w.dataset, w.analysis, w.variant, w.model, w.seed)


def eval_inputs(w):
    """The eval datafile and, on the packed path, its store: what probing or timing a run reads."""
    data = atdr_workflow.data_dir(w.dataset)
    packed = config["datasets"][w.dataset]["loader"] == "packed"
    return {"eval": f"{data}/eval.json", "eval_store": [f"{data}/eval.pack"] if packed else []}


def variant_train_inputs(w):
    """As an ordinary run's, with the variant's training datafile, weights and run config (its
    clips read from the whole training split's store)."""
    folder = f"{atdr_workflow.analysis_dir(w.dataset, w.analysis)}/{w.variant}"
    inputs = {**train_inputs(w), "config": f"{variant_run_path(w)}/run.yaml", "train": f"{folder}/train.json"}
    if "weights" in inputs:
        inputs["weights"] = f"{folder}/train_weight.csv"
    return inputs


def analysis_runs(analysis):
    """Input function: the finished runs an analysis compares on the wildcard's dataset (their files)."""
    return lambda w: atdr_workflow.run_outputs(atdr_workflow.analysis_runs(config, w.dataset, analysis))


def analysis_run_dirs(analysis):
    """Param function: those runs' folders, as one argument string."""
    return lambda w: " ".join(atdr_workflow.analysis_runs(config, w.dataset, analysis))


def analysis_folder(analysis):
    """Param function: the analysis' folder on the wildcard's dataset."""
    return lambda w: atdr_workflow.analysis_dir(w.dataset, analysis)


def variant_files(analysis, *names):
    """The files of each training-set variant of a retraining analysis (`atdr subset`, `atdr label-noise`)."""
    folder = f"{RESULTS}/{{dataset}}/analysis/{analysis}"
    return [f"{folder}/{v}/{name}" for v in atdr_workflow.variants(config, analysis) for name in names]


def probes(w):
    """The probe results of every probed run on the wildcard's dataset."""
    return [f"{atdr_workflow.analysis_dir(w.dataset, 'robustness')}/{m}/seed{s}/probe.csv"
            for m in atdr_workflow.analysis_models(config, "robustness") for s in SEEDS]


def ensemble_members(w):
    return [atdr_workflow.run_dir(w.dataset, m, w.seed) for m in config["ensembles"][w.ensemble]]


def ensemble_inputs(w):
    """The members' eval predictions and the clip of each of their rows (by which they are averaged)."""
    return [f"{run}/{name}" for run in ensemble_members(w) for name in ("predictions.npy", "predictions_clips.csv")]


def run_dirs():
    return [atdr_workflow.run_dir(d, m, s) for d in DATASETS for m in MODELS for s in SEEDS]


def ensemble_dirs():
    return [f"{RESULTS}/{d}/ensembles/{e}/seed{s}" for d in DATASETS for e in ENSEMBLES for s in SEEDS]


def final_targets():
    """The comparison table and figures, and every run's best checkpoint (deleting one
    retrains only that run and what depends on it)."""
    tables = [f"{COMPARISON}/table.{ext}" for ext in ("csv", "md", "tex")]
    figures = [f"{COMPARISON}/{name}.png" for name in ("mAP_by_model", "per_class_ap", "training_curves", "mAP_vs_params")]
    checkpoints = [f"{run}/checkpoints/best.pt" for run in run_dirs()]
    return tables + figures + [f"{COMPARISON}/mAP_by_model.pdf"] + checkpoints


onstart:
    if workflow.executor_plugin.name == "slurm":
        # each start of a requeued job appends to its Slurm log, rather than replacing it
        os.environ.setdefault("SBATCH_OPEN_MODE", "append")
        # SLURM accepts a job that asks for more than any node offers, which then pends forever: stop now.
        problems = atdr_slurm.check_requests(atdr_slurm.submitted_jobs(workflow.dag))
        if problems:
            raise WorkflowError("\n".join(f"SLURM: {problem}" for problem in problems))
