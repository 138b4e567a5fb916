# Config validation and the helpers every stage uses. Run configs are built by atdr.workflow.
from pathlib import Path

import atdr.slurm as atdr_slurm
import atdr.workflow as atdr_workflow
from atdr.errors import AtdrError
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate


# Jobs run `python -m atdr` from this checkout, in the project venv or a conda env (envs/).
shell.prefix(
    f'set -euo pipefail; export PYTHONPATH="{Path(workflow.basedir).parent}"' + '"${{PYTHONPATH:+:$PYTHONPATH}}"; '
)

if not config:
    raise WorkflowError("no config: run from the repository root (the default profile loads config/config.yaml) or pass --configfile")
validate(config, "../schemas/config.schema.yaml")
if not workflow.remote_exec:  # checked once, by the main process: a cluster job's Snakemake starts faster
    try:
        atdr_workflow.check(config)
    except AtdrError as e:
        raise WorkflowError(f"config: {e}")

DATASETS = list(config["datasets"])
MODELS = list(config["models"])
SEEDS = [str(s) for s in config["seeds"]]
ENSEMBLES = list(config["ensembles"])
RESULTS = atdr_workflow.RESULTS


def choice(names):
    """A wildcard constraint matching exactly these names (nothing when the list is empty)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def of_source(source):
    return [d for d, ds in config["datasets"].items() if ds["source"] == source]


wildcard_constraints:
    dataset=choice(DATASETS),
    model=choice(MODELS),
    seed=r"\d+",
    ensemble=choice(ENSEMBLES),
    frontend=r"(kaldi|mel)\d+",


def download_dir(w):
    return f"{RESULTS}/{w.dataset}/download"


def segment_names(dataset):
    ds = config["datasets"][dataset]
    return " ".join(ds["train_segments"] + ds["eval_segments"])


def segment_args(w):
    """`--segments FILE` for each segment list of a split (train or eval)."""
    names = config["datasets"][w.dataset][f"{w.split}_segments"]
    return " ".join(f"--segments {download_dir(w)}/{name}" for name in names)


def run_path(w):
    return atdr_workflow.run_dir(w.dataset, w.model, w.seed)


def train_inputs(w):
    """Datafiles, class list, weights and norm stats a run reads."""
    data = atdr_workflow.data_dir(w.dataset)
    inputs = {
        "config": f"{run_path(w)}/run.yaml",
        "train": f"{data}/train.json",
        "eval": f"{data}/eval.json",
        "labels": f"{download_dir(w)}/class_labels_indices.csv",
    }
    if config["datasets"][w.dataset]["balanced_sampling"]:
        inputs["weights"] = f"{data}/train_weight.csv"
    if atdr_workflow.uses_norm_stats(config, w.dataset, w.model):
        frontend = atdr_workflow.frontend_of(config, w.dataset, w.model)
        inputs["stats"] = f"{data}/stats_{frontend}.json"
    return inputs


def ensemble_members(w):
    return [atdr_workflow.run_dir(w.dataset, m, w.seed) for m in config["ensembles"][w.ensemble]]


def run_dirs():
    return [atdr_workflow.run_dir(d, m, s) for d in DATASETS for m in MODELS for s in SEEDS]


def ensemble_dirs():
    return [f"{RESULTS}/{d}/ensembles/{e}/seed{s}" for d in DATASETS for e in ENSEMBLES for s in SEEDS]


def final_targets():
    """The comparison table and figures, and every run's best checkpoint (deleting one
    retrains only that run and what depends on it)."""
    tables = [f"{RESULTS}/comparison/table.{ext}" for ext in ("csv", "md", "tex")]
    figures = [f"{RESULTS}/comparison/{name}.png" for name in ("mAP_by_model", "per_class_ap", "training_curves", "mAP_vs_params")]
    checkpoints = [f"{run}/checkpoints/best.pt" for run in run_dirs()]
    return tables + figures + [f"{RESULTS}/comparison/mAP_by_model.pdf"] + checkpoints


onstart:
    # SLURM accepts a job that asks for more than any node offers, which then pends forever: say so now.
    if workflow.executor_plugin.name == "slurm":
        jobs = [(job.rule.name, job.resources, job.threads) for job in workflow.dag.needrun_jobs() if not job.is_local]
        for message in atdr_slurm.check_requests(jobs):
            logger.warning(f"SLURM: {message}")
